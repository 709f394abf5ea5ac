"""The evaluated pieces (dexter_cli/evaluation/pieces.py)."""

from __future__ import annotations

from pathlib import Path




def test_listed_pieces_are_named_by_the_shortest_distinct_tail_of_their_path():
    from dexter_cli.evaluation.pieces import _unique_names

    paths = [Path("/d/Bach/Fugue/bwv_846/xml_score.musicxml"), Path("/d/Bach/Fugue/bwv_848/xml_score.musicxml"),
             Path("/d/Liszt/Sonata/1/xml_score.musicxml"), Path("/d/Chopin/Sonata/1/xml_score.musicxml")]
    assert list(_unique_names(paths).values()) == ["bwv_846/xml_score", "bwv_848/xml_score",
                                                   "Liszt/Sonata/1/xml_score", "Chopin/Sonata/1/xml_score"]
    assert list(_unique_names(paths[:2] + [Path("/e/other.xml")]).values()) == [
        "bwv_846/xml_score", "bwv_848/xml_score", "other"]
