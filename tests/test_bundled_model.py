"""The bundled default model: renders out of the box, continuously, and follows its controls."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dexter_cli.engine import DEFAULT_CHECKPOINT

pytestmark = pytest.mark.skipif(not (DEFAULT_CHECKPOINT / "model.safetensors").is_file(),
                                reason="no bundled model in dexter_cli/assets/default yet")

BWV848 = "asap/Bach/Fugue/bwv_848/xml_score.musicxml"


def test_cli_renders_partituras_example_with_the_bundled_model(tmp_path):
    import partitura as pt

    out = tmp_path / "out.mid"
    r = subprocess.run([sys.executable, "-m", "dexter_cli", "render", pt.EXAMPLE_MUSICXML, "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(pt.load_performance_midi(str(out)).note_array()) == len(pt.load_score(pt.EXAMPLE_MUSICXML).note_array())
    r = subprocess.run([sys.executable, "-m", "dexter_cli", "render", "--info"], capture_output=True, text=True)
    said = " ".join(r.stdout.replace("│", " ").split())  # as read, not as wrapped in the table
    assert r.returncode == 0 and "trained" in said and "stored in float16" in said


def test_bundled_weights_are_small():
    """The issue asks for a few MB: the weights are stored in float16."""
    from dexter_cli.checkpoint import load_inference

    _, config = load_inference(DEFAULT_CHECKPOINT)
    assert config["weights_dtype"] == "float16"
    assert sum(f.stat().st_size for f in DEFAULT_CHECKPOINT.iterdir()) < 6e6


@pytest.mark.slow
def test_real_score_renders_without_seams(shared_datasets, tmp_path):
    """Paired: BWV 848 with two window layouts (inner edges moved by half a stride), 3 seeds each.
    A seam is the excess jump of the same onset pairs on an edge; it must not be significantly
    above 5 % of the jump between consecutive onsets inside the windows (inaudible)."""
    from dexter_cli.evaluation.continuity import paired_seams
    from dexter_cli.evaluation.continuity import render_layouts

    # 50 % overlap of 300-note windows: stride 150, the second layout's edges moved by 75
    onset_beat, renders, edges, _ = render_layouts(shared_datasets / BWV848, (0, 75), range(3), {"overlap": 0.5})
    seams = paired_seams(onset_beat, renders, edges)
    assert seams["pairs"] >= 8, seams
    for name in ("tempo", "velocity"):
        assert seams[f"{name}_seam"] <= 0.05 * seams[f"{name}_inside"] + 2 * seams[f"{name}_seam_se"], seams


CONTROLS = ["tempo_level", "rubato", "loudness", "dynamic_range", "articulation", "pedal_amount", "asynchrony"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTROLS)
def test_each_control_moves_its_descriptor_monotonically(shared_datasets, name):
    from dexter_cli.data.codec import C_BUILTIN_NAMES, control_features
    from dexter_cli.data.decode import decode_performance
    from dexter_cli.render import sample_score

    measured = []
    for v in (-2, -1, 0, 1, 2):
        sampled = sample_score(shared_datasets / BWV848, {"controls": [f"{name}={v}"], "seed": 0, "num_samples": 2})
        score, p = sampled.score, sampled.p_codec
        vals = []
        for q in p:
            onset = score.note_array["onset_beat"].astype(float)
            na = decode_performance(score, q).note_array()
            when = dict(zip(na["id"].astype(str), na["onset_sec"]))
            perf_onset = np.array([when[i] for i in score.note_ids])
            c = control_features(onset, q.astype(float), np.ones(len(q), bool), perf_onset)
            vals.append(c[:, C_BUILTIN_NAMES.index(name)].mean())
        measured.append(float(np.mean(vals)))
    assert all(b > a for a, b in zip(measured, measured[1:])), (name, measured)
