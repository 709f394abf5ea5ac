"""Where the aligned performances are: the public datasets' own layouts.

Discovery only looks at file names; nothing is parsed here. Each dataset
reports what it found and what it could not use, so nothing is guessed
silently.

Layouts
-------
asap
    ``<Composer>/<group>/<piece>/xml_score.musicxml``, ``<perf>.mid`` and
    ``<perf>_note_alignments/note_alignment.tsv`` (score ids of the maximally
    unfolded score, e.g. ``n12-2``).
vienna422
    ``match/<piece>_pNN.match`` (performance + alignment) and
    ``musicxml/<piece>.musicxml``.
atepp
    ATEPP's own: ``<piece>/<perf_id>/align.csv`` (parangonar's alignment, found as the original
    finds it, ``**/[!z]*n.csv``), the performance ``<piece>/<perf_id>.mid`` and the piece's
    ``*.musicxml``, ``*.mxl`` or ``*.xml``; with ``ATEPP-metadata*.csv`` at the root, its
    ``midi_path`` and ``score_path`` columns pair each performance with its score. Also the
    parangonada files of other layouts: the MIDI beside ``align.csv`` or in a parent folder named
    after the alignment folder (ASAP's ``<perf>_note_alignments/parangonada_data/``).

A performance's mid-level feature CSV is ``<perf>_cep_features.csv`` beside it, or, for
Vienna 4x22, ``cep_features/<piece>_pNN.csv`` at the dataset root.
"""

from __future__ import annotations

import csv
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import DexterError

Dataset = Literal["asap", "vienna422", "atepp"]
DATASETS: tuple[str, ...] = ("asap", "vienna422", "atepp")
# default folder name of each dataset under --datasets-root
DEFAULT_DIRS: dict[str, tuple[str, ...]] = {
    "asap": ("asap", "asap-dataset", "ASAP"),
    "vienna422": ("vienna4x22", "vienna422", "Vienna4x22"),
    "atepp": ("atepp", "ATEPP", "ATEPP-1.1"),
}
SCORE_SUFFIXES = (".musicxml", ".mxl", ".xml", ".mei", ".krn")
ATEPP_ALIGNMENT = "[!z]*n.csv"  # the original's pattern for parangonar's align.csv
ATEPP_METADATA = "ATEPP-metadata*.csv"


@dataclass(frozen=True)
class PerformanceSource:
    """One score-aligned performance, as found on disk.

    Attributes
    ----------
    dataset : str
        ``asap``, ``vienna422`` or ``atepp``.
    piece : str
        Piece key (composer/title) used for the split; all performances of a
        piece share a split.
    name : str
        Performance name (unique within the piece).
    score : Path
        Score file.
    performance : Path
        Performance file (MIDI, or a match file that also holds the alignment).
    alignment : Path or None
        Alignment file (``note_alignment.tsv`` or ``align.csv``); None when the
        performance file is a match file.
    root : Path
        The dataset root; paths in the store are relative to it.
    """

    dataset: str
    piece: str
    name: str
    score: Path
    performance: Path
    alignment: Path | None
    root: Path

    @property
    def key(self) -> str:
        """Stable identifier: dataset and performance path relative to the root."""
        return f"{self.dataset}:{self.performance.relative_to(self.root).as_posix()}"

    @property
    def score_key(self) -> str:
        """Stable identifier of the score."""
        return f"{self.dataset}:{self.score.relative_to(self.root).as_posix()}"

    @property
    def cep_csv(self) -> Path:
        """Where this performance's mid-level perceptual feature CSV is, or would be:
        ``<perf>_cep_features.csv`` beside it, else Vienna 4x22's ``cep_features/<piece>_pNN.csv``."""
        beside = self.performance.with_name(self.performance.stem + "_cep_features.csv")
        vienna = self.root / "cep_features" / f"{self.performance.stem}.csv"
        return vienna if self.dataset == "vienna422" and not beside.is_file() and vienna.is_file() else beside


@dataclass
class Discovery:
    """What discovery found for one dataset."""

    dataset: str
    root: Path | None
    sources: list[PerformanceSource] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    note: str = ""


def resolve_roots(
    datasets_root: Path | None,
    datasets: list[str] | None,
    overrides: dict[str, Path | None],
) -> dict[str, Path | None]:
    """Decide the root folder of each asked-for dataset.

    Parameters
    ----------
    datasets_root : Path or None
        Folder holding the datasets under their usual names.
    datasets : list of str or None
        Datasets to use; None means every dataset whose folder exists.
    overrides : dict
        Per-dataset root folders that win over ``datasets_root``.

    Returns
    -------
    dict
        Dataset name to root folder (None when it was asked for and not found).
    """
    if datasets is not None:
        # a dataset's folder name (vienna4x22) is taken for its name (vienna422)
        datasets = [next((k for k, names in DEFAULT_DIRS.items() if d in names), d) for d in datasets]
        unknown = [d for d in datasets if d not in DATASETS]
        if unknown:
            raise DexterError(f"unknown dataset {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    roots: dict[str, Path | None] = {}
    for name in DATASETS:
        root = overrides.get(name)
        if root is not None:
            if not Path(root).is_dir():
                raise DexterError(f"--{name}-root {root} is not a folder")
            roots[name] = Path(root)
            continue
        if datasets_root is not None:
            for d in DEFAULT_DIRS[name]:
                if (Path(datasets_root) / d).is_dir():
                    roots[name] = Path(datasets_root) / d
                    break
        roots.setdefault(name, None)
    if datasets is None:
        explicit = [d for d in DATASETS if overrides.get(d) is not None]
        wanted = explicit or [d for d in DATASETS if roots[d] is not None]
    else:
        wanted = list(datasets)
    return {d: roots[d] for d in wanted}


def discover(roots: dict[str, Path | None]) -> list[Discovery]:
    """Find the performances of each dataset under its root.

    Parameters
    ----------
    roots : dict
        Output of :func:`resolve_roots`.

    Returns
    -------
    list of Discovery
        One entry per dataset, sources sorted by key.
    """
    finders = {"asap": _discover_asap, "vienna422": _discover_vienna, "atepp": _discover_atepp}
    found = []
    for name, root in roots.items():
        if root is None:
            found.append(Discovery(name, None, note="not found (no folder under the datasets root)"))
            continue
        disc = finders[name](Path(root).resolve())
        disc.sources.sort(key=lambda s: s.key)
        found.append(disc)
    return found


def _find(root: Path, pattern: str) -> list[Path]:
    """Every file whose name matches ``pattern`` (a file name or a glob) under ``root``,
    following symbolic links, sorted."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        found += [Path(folder) / f for f in fnmatch.filter(files, pattern)]
    return sorted(found)


def _asap_pieces(root: Path) -> dict[str, str]:
    """Folder -> ``composer/title`` from ASAP's metadata.csv (a piece's ``_no_repeat``
    score shares its title, hence its split)."""
    meta = root / "metadata.csv"
    pieces: dict[str, str] = {}
    if meta.is_file():
        try:
            with open(meta, newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    if row.get("folder") and row.get("composer") and row.get("title"):
                        pieces[row["folder"].strip("/")] = f"{row['composer']}/{row['title']}"
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DexterError(f"{meta} is not a UTF-8 CSV file ({type(exc).__name__}: {str(exc)[:80]}); "
                              "restore ASAP's metadata.csv or remove it") from exc
    return pieces


def _piece_from_folder(rel: str) -> str:
    """``Composer/group/piece`` with ASAP's ``_no_repeat`` variant folded onto its piece."""
    return re.sub(r"_no_repeat$", "", rel)


def _discover_asap(root: Path) -> Discovery:
    disc = Discovery("asap", root)
    titles = _asap_pieces(root)
    tsvs = [p for p in _find(root, "note_alignment.tsv") if p.parent.name.endswith("_note_alignments")]
    for tsv in tsvs:
        align_dir = tsv.parent
        piece_dir = align_dir.parent
        name = align_dir.name[: -len("_note_alignments")]
        midi = piece_dir / f"{name}.mid"
        score = piece_dir / "xml_score.musicxml"
        rel = piece_dir.relative_to(root).as_posix()
        if not midi.is_file():
            disc.problems.append(f"{rel}/{name}: no performance MIDI {midi.name}")
            continue
        if not score.is_file():
            disc.problems.append(f"{rel}/{name}: no xml_score.musicxml")
            continue
        piece = titles.get(rel) or _piece_from_folder(rel)
        disc.sources.append(PerformanceSource("asap", piece, name, score, midi, tsv, root))
    if not disc.sources and not disc.problems:
        disc.note = "no */*_note_alignments/note_alignment.tsv found"
    return disc


_VIENNA_RE = re.compile(r"^(?P<piece>.+)_(?P<perf>p\d+)$")


def _discover_vienna(root: Path) -> Discovery:
    disc = Discovery("vienna422", root)
    match_dir, xml_dir = root / "match", root / "musicxml"
    if not match_dir.is_dir():
        disc.note = "no match/ folder"
        return disc
    for match in sorted(match_dir.glob("*.match")):
        m = _VIENNA_RE.match(match.stem)
        if not m:
            disc.problems.append(f"match/{match.name}: name is not <piece>_pNN.match")
            continue
        piece = m.group("piece")
        score = next((xml_dir / f"{piece}{s}" for s in SCORE_SUFFIXES if (xml_dir / f"{piece}{s}").is_file()), None)
        if score is None:
            disc.problems.append(f"match/{match.name}: no musicxml/{piece}.musicxml")
            continue
        disc.sources.append(PerformanceSource("vienna422", piece, m.group("perf"), score, match, None, root))
    return disc


def _find_score(folder: Path) -> Path | None:
    preferred = folder / "xml_score.musicxml"
    if preferred.is_file():
        return preferred
    cands = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SCORE_SUFFIXES)
    return cands[0] if len(cands) == 1 else None


def _atepp_midi(csv_path: Path) -> Path | None:
    """The MIDI beside an alignment, or in a parent folder named after the alignment folder
    (``<piece>/<perf_id>/align.csv`` -> ``<piece>/<perf_id>.mid``)."""
    mids = sorted(csv_path.parent.glob("*.mid")) + sorted(csv_path.parent.glob("*.midi"))
    if len(mids) == 1:
        return mids[0]
    for folder in list(csv_path.parents)[:4]:
        stems = [folder.name[: -len(sfx)] for sfx in ("_note_alignments", "_alignment") if folder.name.endswith(sfx)]
        for stem in stems + [folder.name]:
            for ext in (".mid", ".midi"):
                if (folder.parent / f"{stem}{ext}").is_file():
                    return folder.parent / f"{stem}{ext}"
    return None


def _atepp_metadata(root: Path) -> dict[str, str] | None:
    """MIDI path -> score path (both relative to the root) from ATEPP's metadata CSV, or None
    without one. Rows without a score (most of ATEPP's transcriptions) are left out."""
    found = sorted(root.glob(ATEPP_METADATA))
    if not found:
        return None
    if len(found) > 1:
        raise DexterError(f"{len(found)} ATEPP metadata files in {root} ({', '.join(f.name for f in found)}): keep one")
    try:
        with open(found[-1], newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DexterError(f"{found[-1]} is not a UTF-8 CSV file ({type(exc).__name__}); restore it or remove it") from exc
    if rows and not {"midi_path", "score_path"} <= set(rows[0]):
        raise DexterError(f"{found[-1].name} has no midi_path and score_path columns")
    return {r["midi_path"].strip("/"): r["score_path"].strip("/") for r in rows
            if (r.get("midi_path") or "").strip() and (r.get("score_path") or "").strip()}


def _discover_atepp(root: Path) -> Discovery:
    disc = Discovery("atepp", root)
    scores = _atepp_metadata(root)
    for align in _find(root, ATEPP_ALIGNMENT):
        rel = align.relative_to(root).as_posix()
        midi = _atepp_midi(align)
        if midi is None:
            disc.problems.append(f"{rel}: no performance MIDI beside it")
            continue
        midi_rel = midi.relative_to(root).as_posix()
        if scores is not None and midi_rel in scores:
            score = Path(os.path.normpath(root / scores[midi_rel]))  # (links kept: a linked tree is read in place)
            if not score.is_file() or not score.is_relative_to(root):
                disc.problems.append(f"{rel}: the metadata's score {scores[midi_rel]} is missing or outside {root.name}")
                continue
        elif scores is not None:
            disc.problems.append(f"{rel}: {midi_rel} has no score in {ATEPP_METADATA}")
            continue
        else:
            score = _find_score(midi.parent)
            if score is None:
                disc.problems.append(f"{rel}: no single score file in {midi.parent.relative_to(root).as_posix() or '.'}")
                continue
        piece = midi.parent.relative_to(root).as_posix() or midi.parent.name
        disc.sources.append(PerformanceSource("atepp", piece, midi.stem, score, midi, align, root))
    if not disc.sources and not disc.problems:
        disc.note = f"no parangonar alignment ({ATEPP_ALIGNMENT}) found"
    return disc
