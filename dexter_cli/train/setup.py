"""What a training run is built from: the store's checks, the prior, a fine-tune's start, the
checkpoint's config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_inference
from ..config import TrainConfig
from ..data.dataset import PairSet, SegmentSet
from ..data.store import CodecStore
from ..engine import _prior_in_stats
from ..errors import DexterError
from ..model import ModelConfig
from ..prior import PRIOR_PREFIX, Prior


def _datasets(cfg: TrainConfig, store: CodecStore):
    if cfg.task.target == "transfer":
        train, valid = PairSet(store, "train"), PairSet(store, "valid")
    else:
        train = SegmentSet(store, "train", synthetic=cfg.data.synthetic)
        valid = SegmentSet(store, "valid", synthetic=False)
    if len(train) == 0:
        raise DexterError(f"the train split of {store.path} is empty" +
                          (" of pairs (run `dexter pair`)" if cfg.task.target == "transfer" else ""))
    return train, valid


def check_finite_store(store: CodecStore, chunk: int = 4096) -> None:
    """Refuse a store whose codec arrays hold NaN or infinite values, naming the file and the count."""
    for name in ("p_codec", "s_codec", "c_codec"):
        arr = getattr(store, name)
        bad = sum(int((~np.isfinite(np.asarray(arr[i:i + chunk]))).sum()) for i in range(0, len(arr), chunk))
        if bad:
            raise DexterError(f"{store.path / (name + '.npy')} holds {bad} non-finite values: rebuild the store "
                              "with dexter codec")


def fit_prior(cfg: TrainConfig, store: CodecStore, stats: dict | None = None) -> Prior | None:
    """The prior mean mu(s) of ``task.prior`` (``context``, or ``level`` with its level part),
    fitted on the store's real train segments (the same on every process) in the normalisation of
    ``stats`` (default the store's), or None for ``none``."""
    if cfg.task.prior == "none":
        return None
    level_alpha = cfg.task.prior_level_alpha if cfg.task.prior == "level" else None
    return Prior.fit(store, alpha=cfg.task.prior_alpha, level_alpha=level_alpha, stats=stats)


def _prior_keys(prior: str) -> list[tuple[str, object]]:
    """The task settings that define a prior mean of this kind, with the defaults of checkpoints
    written before they were recorded."""
    keys: list[tuple[str, object]] = [("prior", "none")]
    if prior != "none":
        keys.append(("prior_alpha", None))
    if prior == "level":
        keys.append(("prior_level_alpha", None))
    return keys


def _check_same(saved: dict, cfg: TrainConfig, where: str, prediction: bool = False) -> None:
    """Refuse to continue ``saved`` (a run's config) under another model, target or prior mean mu(s);
    a fine-tune (``prediction``) keeps the parameterisation (``prediction``, ``timesteps``) instead
    of the prior, which it may fit anew."""
    if ModelConfig.from_dict(saved["model"]).to_dict() != cfg.model.to_dict():  # (settings added since: defaults)
        raise DexterError(f"{where} has another model config: {saved['model']}")
    keys = [("target", None)] + ([("prediction", "eps"), ("timesteps", 1000)] if prediction
                                 else _prior_keys(cfg.task.prior))
    for key, default in keys:
        if saved["task"].get(key, default) != getattr(cfg.task, key):
            raise DexterError(f"{where} was trained with task.{key} = "
                              f"{saved['task'].get(key, default)!r}, not {getattr(cfg.task, key)!r}")


def load_init(cfg: TrainConfig, store: CodecStore) -> tuple[dict[str, torch.Tensor], dict, Prior | None, dict]:
    """The weights, normalisation statistics, prior and facts of ``cfg.init_from``, checked against
    the config and the store. A fine-tune keeps its start's normalisation, and its mu(s) unless the
    config asks for another prior: then that prior is fitted on the store in the start's normalisation."""
    state, config = load_inference(Path(cfg.init_from))
    _check_same(config, cfg, f"init_from {cfg.init_from}", prediction=True)
    codec, meta = config["codec"], store.meta
    for key, ours in (("version", meta["codec_version"]), ("p_codec_names", meta["p_codec_names"]),
                      ("s_codec_names", meta["s_codec_names"]), ("c_codec_names", meta["c_codec_names"])):
        if codec[key] != ours:
            raise DexterError(f"init_from {cfg.init_from} has codec {key} {codec[key]!r}, the store {ours!r}")
    training = config.get("training", {})
    facts = {"init_from": str(cfg.init_from), "init_name": training.get("name", ""),
             "init_step": training.get("step", 0)}
    if config["task"].get("prior", "none") == cfg.task.prior:  # the same kind: the same prior, or refused
        _check_same(config, cfg, f"init_from {cfg.init_from}")
        prior = Prior.from_state_dict(state) or _prior_in_stats(codec["stats"])
    else:  # another kind: fitted anew, in the start's normalisation
        prior = fit_prior(cfg, store, codec["stats"])
        if prior is not None:
            facts["prior_refitted"] = True
    state = {k: v for k, v in state.items() if not k.startswith(PRIOR_PREFIX)}
    return state, codec["stats"], prior, facts


def checkpoint_config(cfg: TrainConfig, store: CodecStore, step: int, stats: dict | None = None, **facts) -> dict:
    """The small config stored beside the weights: all inference needs, and training facts.
    ``stats``: the normalisation statistics the model was trained with (default: the store's)."""
    meta = store.meta
    return {"model": cfg.model.to_dict(),
            "task": cfg.task.__dict__.copy(),
            "codec": {"version": meta["codec_version"], "max_note_seq": meta["max_note_seq"],
                      "p_codec_names": meta["p_codec_names"], "s_codec_names": meta["s_codec_names"],
                      "c_codec_names": meta["c_codec_names"], "stats": stats or meta["stats"]},
            "training": {"step": step, "data": str(store.path), "counts": meta["counts"],
                         "pieces_train": len(meta.get("pieces", {}).get("train", [])), **facts}}
