"""The fixed s_codec vocabulary (names only; no partitura import).

Every piece produces these columns whatever its meter, markings or
instrumentation; ``scores.score_features`` fills them.
"""

from __future__ import annotations

# partitura note-feature columns taken as they are (make_note_feats, force_fixed_size=True)
_PT_COLUMNS: dict[str, str] = {
    "pitch": "polynomial_pitch_feature.pitch",
    "duration_feature": "duration_feature.duration",
    "beat_phase": "metrical_strength_feature.beat_phase",
    "metrical_strength_downbeat": "metrical_strength_feature.metrical_strength_downbeat",
    "metrical_strength_secondary": "metrical_strength_feature.metrical_strength_secondary",
    "metrical_strength_weak": "metrical_strength_feature.metrical_strength_weak",
    "piece_position": "relative_score_position_feature.score_position",
    **{f"dyn_{d}": f"loudness_direction_feature.{d}" for d in
       ("ppp", "pp", "p", "mp", "mf", "f", "ff", "fff", "fp", "sf", "sfp", "sfz")},
    "dyn_other_constant": "loudness_direction_feature.unknown_constant",
    "dyn_other_impulsive": "loudness_direction_feature.unknown_impulsive",
    "cresc": "loudness_direction_feature.loudness_incr",
    "dim": "loudness_direction_feature.loudness_decr",
    **{f"tempo_{t}": f"tempo_direction_feature.{t}" for t in
       ("largo", "grave", "lento", "adagio", "larghetto", "adagietto", "andante", "andantino",
        "moderato", "allegretto", "allegro", "vivace", "presto", "prestissimo")},
    "tempo_other_constant": "tempo_direction_feature.unknown_constant",
    "accel": "tempo_direction_feature.tempo_incr",
    "rit": "tempo_direction_feature.tempo_decr",
    "fermata": "fermata_feature.fermata",
    "slur_incr": "slur_feature.slur_incr",
    "slur_decr": "slur_feature.slur_decr",
    "grace_note": "grace_feature.grace_note",
    "n_grace": "grace_feature.n_grace",
    "grace_pos": "grace_feature.grace_pos",
    "chord_size": "vertical_neighbor_feature.n_total",
    "chord_above": "vertical_neighbor_feature.n_above",
    "chord_below": "vertical_neighbor_feature.n_below",
    "chord_highest": "vertical_neighbor_feature.highest_pitch",
    "chord_lowest": "vertical_neighbor_feature.lowest_pitch",
    "chord_range": "vertical_neighbor_feature.pitch_range",
}
# articulation flags: the max over partitura's note articulations and articulation directions
_ARTICULATIONS: dict[str, tuple[str, ...]] = {
    "staccato": ("articulation_feature.staccato", "articulation_direction_feature.staccato",
                 "articulation_feature.staccatissimo", "articulation_feature.spiccato"),
    "tenuto": ("articulation_feature.tenuto", "articulation_direction_feature.tenuto",
               "articulation_feature.detached-legato"),
    "accent": ("articulation_feature.accent", "articulation_direction_feature.accent",
               "articulation_feature.strong-accent", "articulation_direction_feature.marcato",
               "articulation_feature.stress"),
    "ornament": tuple(f"ornament_feature.{o}" for o in (
        "trill-mark", "turn", "delayed-turn", "inverted-turn", "mordent", "inverted-mordent",
        "tremolo", "shake", "wavy-line", "other-ornament")),
}
# note_array columns: onset/duration in beats, voice, staff, meter
_NA_COLUMNS = ("onset_beat", "duration_beat", "voice", "staff", "ts_beats", "ts_beat_type", "is_downbeat")

_FEATURE_FUNCTIONS: tuple[str, ...] = tuple(sorted({src.split(".")[0] for src in (
    *_PT_COLUMNS.values(), *(x for srcs in _ARTICULATIONS.values() for x in srcs))}))

S_CODEC_NAMES: tuple[str, ...] = (
    *_NA_COLUMNS, "ioi_beat", *_PT_COLUMNS.keys(), *_ARTICULATIONS.keys()
)
