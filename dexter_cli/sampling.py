"""How a model is sampled: one frozen, validated options object.

:class:`SamplingOptions` is built in one place, :meth:`SamplingOptions.for_model`: the package's
defaults, then the decoding the model records (``config["sampling"]``, chosen on the valid split
when it was bundled), then the caller's choices. It travels whole through ``render``,
``evaluate`` and ``test``.

Two kinds of setting live in it:

- the caller's: sampler, steps, guidance w, seed, number of samples, window overlap, the
  strength of a re-render and the controls;
- the model's decoding, recorded with it and not a command-line option: the temperature of the
  curves' initial noise, where the curves come from (``curves``) and the gains on their range
  (``spread``). It applies when sampling from noise; a re-rendered performance keeps its own
  curves (:meth:`SamplingOptions.from_source`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, get_args

from .errors import DexterError

SamplerName = Literal["dpm++", "ddim", "ddpm"]
CurveMode = Literal["sample", "mean"]
SAMPLERS: tuple[str, ...] = get_args(SamplerName)
CURVE_MODES: tuple[str, ...] = get_args(CurveMode)

DEFAULT_STEPS = 20  # DPM-Solver++ steps when the model records none; other samplers always take this many
# Classifier-free guidance weight w when the model records none: chosen on the valid split with the
# first default model (w = 1, 2, 3, 5; tempo-curve r peaked at 2)
DEFAULT_GUIDANCE = 2.0
MAX_GUIDANCE = 20.0  # w beyond this extrapolates so far from the conditional that the output is noise
MAX_SPREAD = 4.0
MAX_CONTROL = 5.0  # a control beyond +-5 training standard deviations is outside anything the model saw
NO_SPREAD = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class SamplingOptions:
    """Everything that decides a sample, validated when built.

    Attributes
    ----------
    sampler : {"dpm++", "ddim", "ddpm"}
        ``ddpm`` runs all T steps (the paper's); the others ``steps``.
    steps : int
        Denoising steps of dpm++ and ddim.
    guidance : float
        Classifier-free guidance weight w in [0, ``MAX_GUIDANCE``] (1: the plain conditional).
    seed : int
        The same seed gives the same output.
    num_samples : int
        Interpretations sampled as one batch.
    overlap : float
        Fraction of each window shared with its neighbour, in [0, 1).
    strength : float
        How deep a source performance is noised (DExter's sample_steps_frac), in (0, 1].
    controls : tuple of (str, float)
        Controls set, in training standard deviations; the others stay free.
    temperature : float
        Scale of the initial noise x_T of the tempo and velocity curves, in [0, 2].
    curves : {"sample", "mean"}
        The curves from the sampler's endpoint, or from the first step's x0_hat: the network's
        reading of their mean.
    spread : (float, float, float)
        Gains on the tempo and velocity curves' deviations from the piece's means, and on the
        voicing of chords (:mod:`dexter_cli.spread`), each in [0, ``MAX_SPREAD``].
    """

    sampler: SamplerName = "dpm++"
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    seed: int = 0
    num_samples: int = 1
    overlap: float = 0.5
    strength: float = 0.5
    controls: tuple[tuple[str, float], ...] = ()
    temperature: float = 1.0
    curves: CurveMode = "sample"
    spread: tuple[float, float, float] = field(default=NO_SPREAD)

    def __post_init__(self) -> None:
        from .checks import check_range, check_seed

        if self.sampler not in SAMPLERS:
            raise DexterError(f"unknown sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise DexterError(f"--steps must be at least 1, got {self.steps}")
        check_range(self.guidance, "--guidance", 0.0, MAX_GUIDANCE)
        check_seed(self.seed)
        if self.num_samples < 1:
            raise DexterError(f"--num-samples must be at least 1, got {self.num_samples}")
        if not 0.0 <= self.overlap < 1.0:
            raise DexterError(f"--overlap must be in [0, 1), got {self.overlap}")
        if not 0.0 < self.strength <= 1.0:
            raise DexterError(f"--strength must be in (0, 1], got {self.strength}")
        if not 0.0 <= self.temperature <= 2.0:
            raise DexterError(f"the temperature must be in [0, 2], got {self.temperature:g}")
        if self.curves not in CURVE_MODES:
            raise DexterError(f"curves must be one of {', '.join(CURVE_MODES)}, got {self.curves!r}")
        if len(self.spread) != 3 or not all(math.isfinite(g) and 0.0 <= g <= MAX_SPREAD for g in self.spread):
            raise DexterError(f"the spread must be three gains in [0, {MAX_SPREAD:g}], got {self.spread}")
        object.__setattr__(self, "spread", tuple(float(g) for g in self.spread))
        object.__setattr__(self, "controls", tuple((str(k), float(v)) for k, v in self.controls))

    @classmethod
    def for_model(cls, config: dict, **choices) -> "SamplingOptions":
        """The options to sample a checkpoint with: the package's defaults, then the model's recorded
        decoding (``config["sampling"]``), then ``choices`` (a None choice is no choice).

        A recorded step count was judged with DPM-Solver++: another sampler gets ``DEFAULT_STEPS``
        unless ``steps`` is chosen. ``controls`` may be given as ``NAME=VALUE`` strings.

        Raises
        ------
        DexterError
            A choice or a recorded value out of range.
        """
        recorded = config.get("sampling", {}) or {}
        base: dict = {}
        for key, kind in (("guidance", float), ("temperature", float), ("steps", int), ("curves", str)):
            if recorded.get(key) is not None:
                base[key] = kind(recorded[key])
        gains = recorded.get("spread")
        if gains is not None:
            base["spread"] = (float(gains.get("tempo", 1.0)), float(gains.get("velocity", 1.0)),
                              float(gains.get("voicing", 1.0)))
        chosen = {k: v for k, v in choices.items() if v is not None}
        if chosen.get("sampler", "dpm++") != "dpm++" and "steps" not in chosen:
            base.pop("steps", None)
        if isinstance(chosen.get("controls"), (list, tuple)) and all(isinstance(c, str) for c in chosen["controls"]):
            chosen["controls"] = tuple(parse_controls(chosen["controls"], config.get("codec", {}).get("stats")).items())
        return replace(cls(**base), **chosen)

    def from_source(self) -> "SamplingOptions":
        """The options for re-rendering a performance (variation or transfer): the model's curve
        decoding was judged sampling from noise, so a source keeps its own curves."""
        return replace(self, curves="sample", spread=NO_SPREAD)

    def control_values(self) -> dict[str, float]:
        """The set controls, by name."""
        return dict(self.controls)

    def generator(self):
        """A torch generator seeded with ``seed``: every random draw of a sample comes from it."""
        import torch

        return torch.Generator().manual_seed(int(self.seed))

    def as_dict(self) -> dict:
        """The options as plain JSON values (for reports)."""
        out = asdict(self)
        out["spread"] = list(self.spread)
        out["controls"] = dict(self.controls)
        return out


def resolve(config: dict, options: "SamplingOptions | dict | None") -> SamplingOptions:
    """``options`` as given, or the caller's choices (a dict, or none) applied to the model's
    recorded decoding (:meth:`SamplingOptions.for_model`)."""
    if isinstance(options, SamplingOptions):
        return options
    return SamplingOptions.for_model(config, **(options or {}))


# plain units a control may be given in, beside standard deviations: NAME=VALUE<unit>
DYNAMICS_VELOCITY = {"ppp": 16, "pp": 33, "p": 49, "mp": 64, "mf": 80, "f": 96, "ff": 112, "fff": 127}
UNITS = {"tempo_level": ("bpm",), "loudness": ("vel",) + tuple(DYNAMICS_VELOCITY)}


def parse_controls(items: list[str] | tuple[str, ...], stats: dict | None = None) -> dict[str, float]:
    """Parse ``NAME=VALUE`` controls into training standard deviations.

    VALUE is a number of standard deviations (``loudness=+1``), or, with the model's statistics
    ``stats``, a plain value: ``tempo_level=90bpm``, ``loudness=70vel`` (MIDI velocity) or a
    dynamic marking (``loudness=mf``).

    Raises
    ------
    DexterError
        Unknown name (the valid ones are listed), a control this model never saw vary, a value
        that is not a finite number, or one beyond +-``MAX_CONTROL`` standard deviations.
    """
    from .data.codec import C_CODEC_NAMES

    out: dict[str, float] = {}
    for item in items:
        if "=" not in item:
            raise DexterError(f"--control {item!r} must look like NAME=VALUE, e.g. loudness=+1")
        name, raw = (x.strip() for x in item.split("=", 1))
        if name not in C_CODEC_NAMES:
            active = [n for j, n in enumerate(C_CODEC_NAMES) if stats is None or stats.get("c_min") is None
                      or stats["c_max"][j] > stats["c_min"][j]]
            raise DexterError(f"unknown control {name!r}; valid: {', '.join(active)}")
        j = C_CODEC_NAMES.index(name)
        if stats is not None and stats.get("c_min") is not None and stats["c_max"][j] <= stats["c_min"][j]:
            raise DexterError(f"--control {name}: this model's training data never varied it (it was "
                              f"{stats['c_min'][j]:g} throughout), so it cannot change the performance")
        value = _std_value(name, raw, stats, j)
        if not math.isfinite(value) or abs(value) > MAX_CONTROL:
            raise DexterError(f"--control {name}={raw}: give a finite value within +-{MAX_CONTROL:g} standard "
                              "deviations of the training data")
        out[name] = value
    return out


def _std_value(name: str, raw: str, stats: dict | None, j: int) -> float:
    """A control value in standard deviations, from a number of them or a plain value."""
    try:
        return float(raw)  # standard deviations ("inf" and "nan" too: refused by the caller)
    except ValueError:
        pass
    text = raw.lower().replace(" ", "")
    unit = next((u for u in sorted(UNITS.get(name, ()), key=len, reverse=True) if text.endswith(u)), None)
    if unit is None:
        plain = f" or plain units ({', '.join(UNITS[name])})" if name in UNITS else ""
        raise DexterError(f"--control {name}: {raw!r} is not a number of standard deviations{plain}")
    if stats is None:
        raise DexterError(f"--control {name}={raw}: plain units need the model's statistics")
    number = text[: -len(unit)]
    if unit in DYNAMICS_VELOCITY:
        if number:
            raise DexterError(f"--control {name}: {raw!r}: give a dynamic marking alone (e.g. {name}=mf)")
        plain = float(DYNAMICS_VELOCITY[unit])
    else:
        try:
            plain = float(number)
        except ValueError:
            raise DexterError(f"--control {name}: {raw!r} is not a number of {unit}") from None
    return (plain - stats["c_mean"][j]) / stats["c_std"][j]
