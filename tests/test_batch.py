"""Rendering a folder of scores (dexter_cli/batch.py)."""

from __future__ import annotations

from pathlib import Path

from dexter_cli.batch import output_names, render_batch

from .synth import make_score


def test_scores_sharing_a_stem_get_outputs_apart(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    scores = [folder / "x.mxl", folder / "x.musicxml", folder / "y.musicxml", folder / "sub" / "x.musicxml"]
    names, renamed = output_names(scores, folder, None)
    assert [names[s].name for s in scores] == ["x.mxl.performance.mid", "x.musicxml.performance.mid",
                                               "y.performance.mid", "x.performance.mid"]
    assert renamed == scores[:2]
    names, renamed = output_names(scores, folder, tmp_path / "out")
    assert [str(names[s].relative_to(tmp_path / "out")) for s in scores] == ["x.mxl.mid", "x.musicxml.mid", "y.mid",
                                                                            "sub/x.mid"]
    assert len(set(names.values())) == len(scores)


def test_a_batch_writes_every_score_and_names_the_renamed(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_score(folder / "x.musicxml", n_notes=8)
    make_score(folder / "y.musicxml", n_notes=8)
    (folder / "x.xml").write_bytes((folder / "x.musicxml").read_bytes())
    res = render_batch(folder, tmp_path / "out", {"steps": 2}, checkpoint=checkpoint)
    written = sorted(p.name for p in Path(tmp_path / "out").iterdir())
    assert written == ["x.musicxml.mid", "x.xml.mid", "y.mid"] and len(res.rendered) == 3 and not res.skipped
    assert {s.name for s, _ in res.renamed} == {"x.musicxml", "x.xml"}
