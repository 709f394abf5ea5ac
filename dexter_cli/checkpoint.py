"""Checkpoints: training state for ``--resume`` and inference exports.

Inference export (``<dir>/model.safetensors`` + ``<dir>/config.json``): EMA weights,
stored in float32 or (``dtype=torch.float16``, half the size) rounded to float16 and read
back as float32; the safetensors metadata holds the same config and a SHA-256 of the
stored tensors, so loading never unpickles anything and a damaged file is refused.

Training state (``<run>/state/``): model, EMA (safetensors), optimiser state
(``torch.load(weights_only=True)``), step and config. Each is written into a
temporary folder that replaces the previous one in one rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import torch

from .errors import DexterError
from .fileio import default_mode, write_json

FORMAT = "dexter-checkpoint-1"


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, shapes, dtypes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move a finished folder into place; the old one is removed only after."""
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


@contextlib.contextmanager
def _atomic_dir(directory: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``directory`` that replaces it once the block ends; a
    failed write (a full disk) is one clear error and leaves the previous folder intact."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        yield tmp
        os.chmod(tmp, default_mode(directory=True))
        file_mode = default_mode()
        for f in tmp.iterdir():
            os.chmod(f, file_mode)
        _replace_dir(tmp, directory)
    except DexterError:
        raise
    except Exception as exc:  # OSError, or safetensors' own error around one
        why = getattr(exc, "strerror", None) or str(exc)
        kept = "; the previous checkpoint is intact" if directory.exists() else ""
        raise DexterError(f"cannot write checkpoint {directory}: {why}{kept}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _nonfinite_numbers(obj) -> int:
    """How many NaN or infinite floats a JSON-like value holds."""
    if isinstance(obj, float):
        return int(not math.isfinite(obj))
    if isinstance(obj, dict):
        return sum(_nonfinite_numbers(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nonfinite_numbers(v) for v in obj)
    return 0


def check_finite_weights(state: dict[str, torch.Tensor], config: dict, where: str) -> None:
    """Refuse weights, or codec statistics (normalisation, prior), that hold NaN or infinite values."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise DexterError(f"checkpoint {where}: {len(bad)} weight tensors hold non-finite values (first: {bad[0]}); "
                          "the model is broken")
    n = _nonfinite_numbers(config.get("codec", {}).get("stats", {}))
    if n:
        raise DexterError(f"checkpoint {where}: its codec statistics hold {n} non-finite values; the model is broken")


def weights_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str | None:
    """How stored weights fail to fit a model, in one line, or None when they fit.

    Parameters
    ----------
    expected : dict of tensors
        The model's ``state_dict()``.
    given : dict of tensors
        The stored weights.

    Returns
    -------
    str or None
        E.g. ``"2 weights missing (first: head.weight), 1 unexpected (first: extra.bias)"``.
    """
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(given) if tuple(expected[k].shape) != tuple(given[k].shape))
    out = []
    if missing:
        out.append(f"{len(missing)} weights missing (first: {missing[0]})")
    if unexpected:
        out.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
    if reshaped:
        k = reshaped[0]
        shape = lambda t: "x".join(map(str, t.shape)) or "scalar"  # noqa: E731
        out.append(f"{len(reshaped)} of another shape (first: {k}, {shape(given[k])} stored, "
                   f"{shape(expected[k])} in the model)")
    return ", ".join(out) or None


def export_inference(directory: Path, state: dict[str, torch.Tensor], config: dict, *,
                     dtype: torch.dtype | None = None) -> None:
    """Write an inference checkpoint (safetensors + config.json) atomically.

    Parameters
    ----------
    directory : Path
        E.g. ``<run>/checkpoints/best``.
    state : dict
        Model weights (EMA), and the prior's tensors (``prior.*``) when the model has one.
    config : dict
        ``format``, ``model`` (ModelConfig fields), ``codec`` (version, names, stats),
        ``task`` settings and training facts (step, ...).
    dtype : torch.dtype, optional
        Store the floating-point tensors in this type (``torch.float16``: half the size;
        :func:`load_inference` reads them back as float32). Default: as given.
    """
    from safetensors.torch import save_file

    if dtype is not None and not dtype.is_floating_point:
        raise DexterError(f"weights can be stored in a floating-point type only, not {dtype}")
    check_finite_weights(state, config, str(directory))
    from .prior import PRIOR_PREFIX

    # the network's weights in ``dtype``; the prior's stay as they are (its bias is a level, not a weight)
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() and not k.startswith(PRIOR_PREFIX)
                   else v).detach().cpu().contiguous() for k, v in state.items()}
    stored = sorted({str(v.dtype).removeprefix("torch.") for k, v in tensors.items()
                     if v.is_floating_point() and not k.startswith(PRIOR_PREFIX)})
    config = {**config, "format": FORMAT, "weights_dtype": ",".join(stored), "sha256": tensors_sha256(tensors)}
    with _atomic_dir(Path(directory)) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"config": json.dumps(config)})
        write_json(tmp / "config.json", config)


def load_inference(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an inference checkpoint: weights and config, verified.

    Parameters
    ----------
    path : Path
        The checkpoint folder, or its ``model.safetensors``.

    Returns
    -------
    state : dict of tensors
        Floating-point tensors in float32, however they were stored.
    config : dict

    Raises
    ------
    DexterError
        Missing, truncated or tampered files, or an unknown format.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    file = path / "model.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise DexterError(f"no checkpoint at {path} (expected model.safetensors)")
    try:
        with safe_open(str(file), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(file))
    except Exception as exc:  # safetensors raises its own types on damaged files
        raise DexterError(f"checkpoint {file} is damaged or not a safetensors file: {exc}") from exc
    try:
        config = json.loads(meta["config"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise DexterError(f"checkpoint {file} has no dexter config in its metadata") from exc
    if config.get("format") != FORMAT:
        raise DexterError(f"checkpoint {file} has format {config.get('format')!r}, expected {FORMAT}")
    if config.get("sha256") != tensors_sha256(state):
        raise DexterError(f"checkpoint {file} fails its checksum: the weights were altered or damaged")
    check_finite_weights(state, config, str(file))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, config


def save_training_state(directory: Path, *, model: dict, ema: dict, optimizer: dict, step: int,
                        config: dict, extra: dict | None = None, prior: dict | None = None) -> None:
    """Write the full training state for ``--resume`` (atomically, as one folder); ``prior``: the
    prior's tensors (:meth:`dexter_cli.prior.Prior.state_dict`), when the run has one."""
    from safetensors.torch import save_file

    with _atomic_dir(Path(directory)) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.items()}, str(tmp / "model.safetensors"))
        save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
        if prior:
            save_file({k: v.detach().cpu().contiguous() for k, v in prior.items()}, str(tmp / "prior.safetensors"))
        torch.save(optimizer, tmp / "optimizer.pt")
        write_json(tmp / "trainer.json", {"step": step, "config": config, **(extra or {})})


def load_training_state(directory: Path) -> dict:
    """Read a training state written by :func:`save_training_state`."""
    from safetensors.torch import load_file

    directory = Path(directory)
    old = directory.with_name(directory.name + ".old")
    if not (directory / "trainer.json").is_file() and (old / "trainer.json").is_file():
        directory = old  # killed between the two renames of _replace_dir: the previous state is whole
    if not (directory / "trainer.json").is_file():
        raise DexterError(f"no training state to resume at {directory}")
    try:
        info = json.loads((directory / "trainer.json").read_text())
        model = load_file(str(directory / "model.safetensors"))
        ema = load_file(str(directory / "ema.safetensors"))
        prior = load_file(str(directory / "prior.safetensors")) if (directory / "prior.safetensors").is_file() else {}
    except Exception as exc:  # OSError, JSON's or safetensors' own errors on a damaged file
        raise DexterError(f"training state at {directory} is damaged: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())}") from exc
    return {**info, "model": model, "ema": ema, "prior": prior,
            "optimizer": _load_tensor_file(directory / "optimizer.pt")}


def _load_tensor_file(file: Path) -> dict:
    """``torch.load`` of a file that may hold tensors and plain containers only (``weights_only``):
    one that asks for any other Python object (which could run code) is refused."""
    import pickle

    try:
        return torch.load(file, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:  # torch's text here advises weights_only=False: never repeat it
        wanted = re.search(r"GLOBAL (\S+)", str(exc))
        why = f"it asks for the Python object {wanted.group(1)}" if wanted else "damaged?"
        raise DexterError(f"{file} is not a plain tensor file ({why}) and was refused") from exc
    except Exception as exc:  # OSError, or torch's own error on a damaged archive
        raise DexterError(f"{file} is damaged: {type(exc).__name__}: {' '.join(str(exc).split())}") from exc
