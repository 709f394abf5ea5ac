"""Training configuration: typed defaults, then a YAML file, then ``key=value`` overrides.

Overrides use dotted paths checked against the defaults' fields and types
(``model.residual_layers=12``, ``task.timesteps=1000``, ``optim.lr=1e-4``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from .errors import DexterError
from .model.config import ModelConfig


@dataclass
class DataConfig:
    path: str = "data/codec_N=300_mixup"
    synthetic: bool = True  # train on mixup segments too


@dataclass
class TaskConfig:
    target: str = "gen_noise"  # gen_noise | transfer
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction: str = "eps"  # eps | x0 | v
    cond_drop: float = 0.1  # classifier-free guidance: drop the score and each control with this p
    cond_drop_all: float = 0.5  # ... and all controls of an example at once with this p
    recon_weight: float = 0.2
    p_clip: float = 5.0  # normalised p_codec bound (std)
    prior: str = "none"  # none | context | level: diffuse around the prior mean mu(s) (dexter_cli.prior)
    prior_alpha: float = 1.0e5  # the ridge penalty of that fit (on sums over ~10^6 notes)
    prior_level_alpha: float = 300.0  # the ridge penalty of the level part (task.prior: level)

    @classmethod
    def from_dict(cls, d: dict) -> "TaskConfig":
        """The task settings a checkpoint records (settings it no longer has, such as the prior's
        old ``prior_fit``, are dropped; missing ones take their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class OptimConfig:
    lr: float = 2e-4
    min_lr_frac: float = 0.1
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 2000
    batch_size: int = 16  # per optimiser step, over all processes
    grad_accum: int = 1
    clip_grad: float = 1.0
    ema_decay: float = 0.999
    # EMA decay min(ema_decay, (1 + t) / (10 + t)) at update t: the average forgets the initial
    # weights (a fixed 0.999 still holds 0.999^2000 = 13.5 % of them after 2,000 updates)
    ema_warmup: bool = False
    mixed_precision: str = "no"  # no | fp16 | bf16 (GPU)
    max_nonfinite: int = 20  # consecutive non-finite losses before the run stops


@dataclass
class EvalConfig:
    every: int = 250
    valid_batches: int = 4
    sample_segments: int = 4
    sampler: str = "dpm++"
    steps: int = 20
    checkpoint_every: int = 250
    log_every: int = 10


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    run_dir: str = "runs/dexter"
    # fine-tune: start from this inference checkpoint's weights, normalisation and prior (not --resume:
    # a fresh optimiser, schedule and EMA); its model, codec and prior settings must match this config
    init_from: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


TARGETS = ("gen_noise", "transfer")
PRIORS = ("none", "context", "level")  # task.prior: none, or a prior mean of dexter_cli.prior


def _coerce(value: Any, typ: Any, key: str) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise DexterError(f"{key} must be true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise DexterError(f"{key} must be an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-4 and 3e-05, without a dot, as strings
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DexterError(f"{key} must be a number, got {value!r}")
        return float(value)
    if typ is str:
        return str(value)
    return value


def _apply(obj: Any, data: dict, prefix: str = "") -> None:
    hints = get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise DexterError(f"unknown config key {path!r}; valid: {', '.join(sorted(prefix + n for n in names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise DexterError(f"{path} is a section; give {path}.<key>=value")
            _apply(current, value, path + ".")
        else:
            setattr(obj, key, _coerce(value, hints[key], path))


def _dotted(key: str, value: Any) -> dict:
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides.

    A YAML ``model`` entry may be a mapping or the path of a ``configs/model/*.yaml`` file
    (relative to the YAML file's folder or the working directory).
    """
    cfg = TrainConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DexterError(f"config file not found: {path}")
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise DexterError(f"{path} must hold a mapping of settings")
        if isinstance(data.get("model"), str):
            data["model"] = load_model_yaml(data["model"], path.parent)
        _apply(cfg, data)
    for item in overrides or []:
        if "=" not in item:
            raise DexterError(f"override {item!r} must look like key=value (e.g. model.residual_layers=12)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if key == "model" and isinstance(value, str):
            value = load_model_yaml(value, Path("."))
        _apply(cfg, _dotted(key.strip(), value))
    if cfg.task.target not in TARGETS:
        raise DexterError(f"unknown target {cfg.task.target!r}; choose from {', '.join(TARGETS)}")
    if cfg.task.prior not in PRIORS:
        raise DexterError(f"unknown prior {cfg.task.prior!r}; choose from {', '.join(PRIORS)}")
    for key in ("prior_alpha", "prior_level_alpha"):
        if getattr(cfg.task, key) < 0:
            raise DexterError(f"task.{key} must be 0 or more, got {getattr(cfg.task, key)}")
    _check_optim(cfg)
    return cfg


def _check_optim(cfg: TrainConfig) -> None:
    """The optimiser settings a run cannot start without (one line each, named as the CLI flag)."""
    from .checks import check_range, check_seed

    o = cfg.optim
    check_range(o.lr, "--lr (optim.lr)", 0.0, 1.0)
    for name, value in (("--max-steps (optim.max_steps)", o.max_steps), ("--batch-size (optim.batch_size)", o.batch_size),
                        ("optim.grad_accum", o.grad_accum)):
        if value < 1:
            raise DexterError(f"{name} must be at least 1, got {value}")
    check_seed(cfg.seed, "--seed (seed)")


def read_yaml(path: Path) -> Any:
    """The value a YAML file holds.

    Parameters
    ----------
    path : Path
        A YAML file (UTF-8).

    Returns
    -------
    object
        What ``yaml.safe_load`` makes of it (None for an empty file).

    Raises
    ------
    DexterError
        An unreadable file, or YAML that does not parse: one line with the line and column.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise DexterError(f"{path} is not UTF-8 text (byte {byte:#04x} at offset {exc.start})") from exc
    except OSError as exc:
        raise DexterError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DexterError(f"{path} is not valid YAML: {_yaml_problem(exc, text)}") from exc


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """PyYAML's several-line report in one line: where, what, and while doing what."""
    def at(mark) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        out = f"{at(exc.problem_mark)}: {exc.problem or 'not valid here'}"
        if exc.context:
            out += f" ({exc.context}" + (f" from {at(exc.context_mark)}" if exc.context_mark is not None else "") + ")"
        return out
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return f"line {line}, column {column}: character {char} is not allowed in YAML"
    return " ".join(str(exc).split())


def load_model_yaml(name: str, base: Path) -> dict:
    """Read a model config YAML by path (tried relative to ``base``, then as given)."""
    for cand in (base / name, Path(name), base.parent / name):
        if cand.is_file():
            data = read_yaml(cand) or {}
            if not isinstance(data, dict):
                raise DexterError(f"{cand} must hold a mapping of model settings")
            return data
    raise DexterError(f"model config not found: {name}")


def save_config(cfg: TrainConfig, path: Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from .fileio import write_text

    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
