"""Atomic file writes: a reader never sees a half-written file.

Every writer puts its bytes in a temporary file in the target's folder and
renames it over the target (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import DexterError


def default_mode(directory: bool = False) -> int:
    """The permissions a plain ``open()`` (or ``mkdir``) would give under the process umask.

    ``tempfile`` makes private files (0600) and folders (0700); outputs renamed from them get
    these modes instead, so a rendered MIDI file or a shipped checkpoint is readable as usual.
    """
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    Parameters
    ----------
    path : path-like
        The final destination.
    suffix : str
        Suffix the temporary file name ends with (numpy appends ``.npy``/``.npz``
        to names that lack it).
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, default_mode())
        os.replace(tmp_path, path)
    except OSError as exc:  # a full disk, a file size limit, a read-only folder: the old file stays
        raise DexterError(f"cannot write {path}: {exc.strerror or exc}" +
                          ("; the previous file is intact" if path.exists() else "")) from exc
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def check_writable(path: str | os.PathLike, what: str = "output") -> None:
    """Fail now, naming ``path``, when a file could not be written there later.

    The nearest existing folder on the way to ``path`` must be a folder in which a file can
    be created (tried with a temporary file, so a read-only file system is caught even as root),
    and ``path`` itself must not be a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise DexterError(f"cannot write {what} {path}: it is a folder")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DexterError(f"cannot write {what} {path}: {parent} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dexter-write-check.", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise DexterError(f"cannot write {what} {path}: {parent} is not writable ({exc.strerror or exc})") from exc


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically; a list of plain values goes on one
    line (statistics and weight rows stay a line each, not a line per number)."""
    write_text(path, _dumps(json.loads(json.dumps(obj, default=_json_default))) + "\n")


def _dumps(obj: Any, depth: int = 0) -> str:
    pad = "  " * depth
    if isinstance(obj, dict) and obj:
        items = [f"{pad}  {json.dumps(k)}: {_dumps(v, depth + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(f"{pad}  {_dumps(v, depth + 1)}" for v in obj) + f"\n{pad}]"
    return json.dumps(obj)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` atomically (memory-mappable on load)."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save named arrays as an uncompressed ``.npz`` atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def check_outputs(inputs: list[Path | None], outputs: list[Path | None]) -> None:
    """Refuse, before any work, a call whose outputs would overwrite an input or each other, or
    could not be written.

    Parameters
    ----------
    inputs : list of Path or None
        Files the call reads (None: not given).
    outputs : list of Path or None
        Files it writes (None: not asked for).
    """
    def same(a: Path, b: Path) -> bool:
        try:
            return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
        except OSError:
            return False

    ins = [Path(p) for p in inputs if p is not None]
    outs = [Path(p) for p in outputs if p is not None]
    for k, o in enumerate(outs):
        for i in ins:
            if same(o, i):
                raise DexterError(f"refusing to overwrite the input {i} with an output; choose another output path")
        for other in outs[:k]:
            if same(o, other):
                raise DexterError(f"two outputs of this call are the same file {o}; give them different paths")
    for o in outs:
        check_writable(o)
