"""The command line's surface: help, defaults, flags and usage errors (dexter_cli/cli/)."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from dexter_cli.cli import app

COMMANDS = ("codec", "pair", "train", "test", "render", "evaluate")
BUILTIN = ("--help", "--install-completion", "--show-completion")


def _help(*args: str) -> str:
    r = CliRunner().invoke(app, [*args, "-h"], env={"COLUMNS": "200", "NO_COLOR": "1"}, terminal_width=200)
    assert r.exit_code == 0, r.output
    return r.output


def _options() -> dict[str, list]:
    """Each command's options (click's, as typer builds them)."""
    group = typer.main.get_command(app)
    return {name: [p for p in group.commands[name].params if p.param_type_name == "option"] for name in COMMANDS}


@pytest.mark.parametrize("command", ("",) + COMMANDS)
def test_minus_h_is_help(command):
    out = _help(*([command] if command else []))
    assert "Usage:" in out


def _rows(text: str) -> dict[str, str]:
    """The help's option rows: each option's first name and the text of its row and continuation lines."""
    rows: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        m = re.match(r"^│ (--[\w-]+)", line)
        if m:
            name = m.group(1)
            rows[name] = ""
        if name and line.startswith("│"):
            rows[name] += line + "\n"
    return rows


@pytest.mark.parametrize("command", COMMANDS)
def test_every_default_is_visible(command):
    rows = _rows(_help(command))
    for opt in _options()[command]:
        if opt.is_flag or opt.default is None:
            continue
        assert "[default:" in rows[opt.opts[0]].replace(" ", "").replace("│", "").replace("\n", "") or \
            "[default:" in rows[opt.opts[0]], (command, opt.opts, rows[opt.opts[0]])


@pytest.mark.parametrize("command", COMMANDS)
def test_help_loses_no_bracket_and_shows_no_bool_metavar(command):
    text = _help(command)
    assert not re.search(r"\w \.\s", text.replace("e.g. ", "")), "a [default: ...] swallowed by rich markup"
    for line in text.splitlines():
        if "<bool>" in line:
            assert any(b in line for b in BUILTIN), line


def test_the_sampler_is_a_listed_choice():
    assert "dpm++|ddim|ddpm" in _help("render").replace(" ", "")


def test_each_short_flag_has_one_meaning_across_commands():
    meaning: dict[str, set[str]] = {}
    for opts in _options().values():
        for opt in opts:
            longs = [o for o in opt.opts if o.startswith("--")]
            for short in (o for o in opt.opts + opt.secondary_opts if re.fullmatch(r"-\w", o)):
                meaning.setdefault(short, set()).add(longs[0])
    assert {k: v for k, v in meaning.items() if len(v) > 1} == {}


def test_completion_can_be_installed():
    assert "--install-completion" in _help()


def test_usage_errors_exit_2(tmp_path):
    r = CliRunner().invoke(app, ["render"])
    assert r.exit_code == 2 and "give a score file" in r.output
    score = tmp_path / "s.musicxml"
    score.write_text("<score-partwise/>")
    r = CliRunner().invoke(app, ["render", str(score), "-o", "-"])
    assert r.exit_code == 2 and "standard output" in r.output and not (tmp_path / "-").exists()


def test_list_controls_hides_the_constant_ones_and_keeps_names_whole_in_a_pipe():
    from dexter_cli.engine import DEFAULT_CHECKPOINT

    if not (DEFAULT_CHECKPOINT / "model.safetensors").is_file():
        pytest.skip("no bundled model")
    r = CliRunner().invoke(app, ["render", "--list-controls"], terminal_width=80)
    assert r.exit_code == 0
    table = r.output.split("not listed:")[0]
    for name in ("tempo_level", "rubato", "loudness", "dynamic_range", "articulation", "pedal_amount", "asynchrony"):
        assert f"│ {name} " in table
    assert "cep_" not in table and "cep_minorness" in r.output.split("not listed:")[1]
    assert "e-1" not in r.output  # no round-off printed as -7.08e-15
    info = CliRunner().invoke(app, ["render", "--info"], terminal_width=100)
    assert info.exit_code == 0 and "{" not in info.output and "sampling" in info.output and "decoding" in info.output


def test_codec_quiet_is_one_line_and_a_bad_root_names_the_variable(cli, tmp_path):
    from .synth import make_asap_tree

    root = make_asap_tree(tmp_path / "data" / "asap", {"A/B/1": 2, "A/B/2": 2, "C/D/1": 2}, n_notes=30)
    code, out, err = cli(["codec", "--datasets-root", str(root.parent), "--datasets", "asap", "-o",
                          str(tmp_path / "store"), "--max-note-seq", "16", "-q"])
    assert code == 0 and len(out.strip().splitlines()) == 1 and "segments" in out, out
    code, _, err = cli(["codec", "--datasets-root", str(tmp_path / "nowhere"), "-o", str(tmp_path / "s2"), "-q"])
    assert code == 1 and "DEXTER_DATASETS" in err and "--datasets-root" in err


def test_training_without_a_valid_split_says_so_and_prints_no_empty_lines(cli, tmp_path):
    from dexter_cli.data import CodecOptions, run_codec

    from .conftest import TINY
    from .synth import make_asap_tree

    root = make_asap_tree(tmp_path / "asap", {"A/B/1": 2, "A/B/2": 2}, n_notes=30)
    run_codec(tmp_path / "store", CodecOptions(roots={"asap": root}, max_note_seq=16, fractions=(1.0, 0.0, 0.0)))
    code, _, err = cli(["train", "--data", str(tmp_path / "store"), "--run-dir", str(tmp_path / "run"),
                        "--max-steps", "4", "--batch-size", "4", *TINY, "eval.every=2"])
    assert code == 0, err
    assert "no valid split" in err and "inf" not in err
    assert not [ln for ln in err.splitlines() if ln.strip().startswith("step") and ln.strip().endswith(":")]


def test_a_plot_is_titled_by_the_piece():
    from pathlib import Path

    from dexter_cli.render import piece_title

    assert piece_title(Path("asap/Chopin/Ballades/2/xml_score.musicxml")) == "Ballades/2"
    assert piece_title(Path("scores/Mozart_K331.musicxml")) == "Mozart_K331.musicxml"
