"""One wrapper for training and sampling, so the two cannot drift apart.

:class:`Expression` holds the denoiser, the codec normaliser, the schedule and
the task settings. ``loss(batch)`` is DExter's training objective;
``sample(batch)`` runs a sampler over the same denoiser call.

Targets (DExter, Sec. 3.3):

gen_noise
    x_T ~ N(0, I); conditions s_codec and c_codec (c is a standalone condition).
transfer
    the "noise" is the paired source performance: x_t = sqrt(ab) x0_target +
    sqrt(1 - ab) x_source; the condition is c_target - c_source; sampling starts
    from the source and adds no variance (DDIM, eta = 0).

With a prior mean mu(s) (``task.prior: linear``, ``context`` or ``mlp``, :mod:`dexter_cli.prior`) every
p_codec above is taken relative to it: the diffusion runs over p - mu(s) and a
sample is mu(s) + x0_hat. Without one, mu = 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .data.codec import CURVE_ROWS
from .diffusion import Schedule, diffusion_loss, get_sampler, randn
from .diffusion.schedule import check_prediction
from .errors import DexterError
from .model import Denoiser, ModelConfig
from .model.normalize import CodecNormalizer


CURVE_MODES: tuple[str, ...] = ("sample", "mean")


class Expression:
    """Denoiser + codec normalisation + diffusion settings.

    Parameters
    ----------
    model : Denoiser
    normalizer : CodecNormalizer
    schedule : Schedule
    target : {"gen_noise", "transfer"}
    prediction : {"eps", "x0", "v"}
    cond_drop : float
        Probability of dropping the score condition, and each control, in training.
    cond_drop_all : float
        Probability of dropping all controls of a training example at once.
    recon_weight : float
    """

    def __init__(self, model: Denoiser, normalizer: CodecNormalizer, schedule: Schedule, *,
                 target: str = "gen_noise", prediction: str = "eps", cond_drop: float = 0.1,
                 cond_drop_all: float = 0.5, recon_weight: float = 0.2):
        self.model = model
        self.norm = normalizer
        self.schedule = schedule
        self.target = target
        self.prediction = check_prediction(prediction)
        self.cond_drop = cond_drop
        self.cond_drop_all = cond_drop_all
        self.recon_weight = recon_weight
        self._memo: tuple | None = None  # while sampling: (cond dict, its projection by the network)

    # conditions -------------------------------------------------------------
    def conditions(self, batch: dict, drop_s: torch.Tensor | None = None,
                   drop_c: torch.Tensor | None = None) -> dict:
        """Normalised conditions of a batch; ``drop_*`` True selects the learned nulls."""
        s = self.norm.encode_s(batch["s_codec"].float())
        c = self.norm.encode_c(batch["c_codec"].float())
        if self.target == "transfer":
            c = c - self.norm.encode_c(batch["source_c"].float())  # c_target - c_source
        B, C = c.shape[0], c.shape[-1]
        if drop_s is None:
            drop_s = torch.zeros(B, dtype=torch.bool)
        if drop_c is None:
            drop_c = torch.zeros(B, C, dtype=torch.bool)
        drop_c = drop_c.cpu() | ~self.norm.c_active[None]  # constant columns carry nothing: always null
        return {"s": s, "c": c, "mask": batch["mask"].float(), "drop_s": drop_s.to(s.device),
                "drop_c": drop_c.to(s.device)}

    @staticmethod
    def unconditional(cond: dict) -> dict:
        """The same batch with the score and every control replaced by their nulls."""
        return {**cond, "drop_s": torch.ones_like(cond["drop_s"]), "drop_c": torch.ones_like(cond["drop_c"])}

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        """The denoiser callable handed to the samplers.

        While sampling, the network's projection of the conditions, which no step changes, is
        computed once per ``cond`` dict: samplers and the window wrapper pass the same dict at
        every step.
        """
        args = (cond["s"], cond["c"], cond["mask"], cond["drop_s"], cond["drop_c"])
        if self._memo is None:  # training and validation: every call has new conditions
            return self.model(x, t, *args)
        if self._memo[0] is not cond:
            self._memo = (cond, self.model.condition(*args))
        return self.model(x, t, *args, cond_h=self._memo[1])

    def prior(self, s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mu(s), the prior mean of the normalised p_codec (0 without a prior): the ridge's reading of
        the normalised score ``s``, plus the fitted prior network's correction (``task.prior: mlp``)."""
        net = getattr(getattr(self.model, "module", self.model), "prior_net", None)  # (DDP may wrap the model)
        return self.norm.prior(s, mask, net)

    # training ---------------------------------------------------------------
    def loss(self, batch: dict, generator: torch.Generator, device: torch.device | str = "cpu") -> dict:
        """DExter's loss on one batch (random t, noise and condition dropout from ``generator``)."""
        d = self.training_draw(batch, generator, device)
        out = self.denoise(d["x_t"], d["t"], d["cond"])
        return diffusion_loss(out, d["x0"], d["x_t"], d["noise"], d["ab"], d["cond"]["mask"], self.prediction,
                              self.recon_weight)

    def training_draw(self, batch: dict, generator: torch.Generator, device: torch.device | str = "cpu") -> dict:
        """One draw of the training distribution for a batch: the step ``t``, the conditions ``cond``
        after dropout, the clean residual ``x0`` = p - mu(s), the ``noise`` (the source for transfer),
        ``ab`` = alpha_bar_t and the noised ``x_t``; every random number from ``generator``, in a fixed
        order (the loss, and the output-layer refit of scripts/research/headfit.py, see the same draws)."""
        batch = {k: v.to(device) for k, v in batch.items()}
        B, C = batch["p_codec"].shape[0], batch["c_codec"].shape[-1]
        t = torch.randint(0, self.schedule.T, (B,), generator=generator).to(device)
        # classifier-free guidance: drop the score, each control, and (often) all controls at once,
        # so that sampling with any subset of controls, none included, is in distribution
        drop_s = (torch.rand(B, generator=generator) < self.cond_drop).to(device)
        drop_c = torch.rand(B, C, generator=generator) < self.cond_drop
        drop_c |= (torch.rand(B, 1, generator=generator) < self.cond_drop_all)
        drop_c = (drop_c | ~self.norm.c_active[None]).to(device)
        cond = self.conditions(batch, drop_s, drop_c)
        mu = self.prior(cond["s"], cond["mask"])  # prior mean mu(s) of the (undropped) score, 0 without
        x0 = self.norm.encode_p(batch["p_codec"].float()) - mu
        if self.target == "transfer":
            noise = self.norm.encode_p(batch["source_p"].float()) - mu
        else:
            noise = torch.randn(x0.shape, generator=generator).to(device)
        ab = self.schedule.ab(t).to(device=device, dtype=x0.dtype)
        x_t = self.schedule.q_sample(x0, t, noise)
        return {"t": t, "cond": cond, "x0": x0, "noise": noise, "ab": ab, "x_t": x_t}

    # sampling ---------------------------------------------------------------
    @torch.inference_mode()
    def sample(self, batch: dict, *, sampler: str = "dpm++", steps: int = 20, guidance: float = 1.0,
               generator: torch.Generator | None = None, x_start: torch.Tensor | None = None,
               strength: float | None = None, drop_c: torch.Tensor | None = None, temperature: float = 1.0,
               curves: str = "sample", callback: Callable[[int, int, torch.Tensor], None] | None = None,
               wrap: Callable[[Callable], Callable] | None = None) -> torch.Tensor:
        """Sample raw p_codec for a batch of segments.

        Parameters
        ----------
        batch : dict
            ``s_codec``, ``c_codec``, ``mask`` (and ``source_p``/``source_c`` for transfer).
        sampler : {"dpm++", "ddim", "ddpm"}
        steps : int
        guidance : float
            Classifier-free guidance weight w (1 = conditional only).
        generator : torch.Generator, optional
        x_start : tensor, optional
            Raw p_codec to start from (variation); noised to ``strength``.
        strength : float, optional
            Fraction of the schedule to noise ``x_start`` (DExter's sample_steps_frac).
        drop_c : (B, C) bool tensor, optional
            Controls to leave free (replaced by their nulls).
        temperature : float
            Scale of the initial noise x_T of the curve rows (beat_period and velocity) when
            sampling from noise: below 1 trades variety for a reading nearer the model's mean.
            The note-level rows (timing, articulation, pedal) keep their full noise: chord
            asynchrony, say, lives in their spread, which a mean reading would flatten.
        curves : {"sample", "mean"}
            When sampling from noise, ``"mean"`` takes the curve rows from the first step's
            x0_hat instead of the sampler's endpoint: at t = T the input carries almost nothing,
            so that prediction is the network's reading of E[p | s, c], the curve a correlation
            with any one pianist rewards. The note-level rows are the sampler's either way.
        callback : callable, optional
            ``callback(i, n, x0_hat)`` after each step.
        wrap : callable, optional
            Wraps the denoiser callable (e.g. a WindowedDenoiser for whole pieces).

        Returns
        -------
        (B, N, 5) raw p_codec.
        """
        check_curves(curves)
        mask = batch["mask"]
        B, N = mask.shape
        cond = self.conditions(batch, drop_c=drop_c)
        mu = self.prior(cond["s"], cond["mask"])  # prior mean mu(s), 0 without
        uncond = self.unconditional(cond) if guidance != 1.0 else None
        shape = (B, N, self.model.config.p_dim)
        t_start = None
        if self.target == "transfer":
            # the paper's transfer path: start from the source, no variance added
            x = self.norm.encode_p(batch["source_p"].float()) - mu
            if strength is not None:
                t_start = max(0, min(self.schedule.T - 1, round(strength * self.schedule.T) - 1))
            sampler = "ddim"
        elif x_start is not None:
            t_start = max(0, min(self.schedule.T - 1, round((strength or 0.5) * self.schedule.T) - 1))
            x0 = self.norm.encode_p(x_start.float()) - mu
            noise = randn(shape, generator, mask.device)
            x = self.schedule.q_sample(x0, torch.full((B,), t_start), noise)
        else:
            x = randn(shape, generator, mask.device)
            x[..., list(CURVE_ROWS)] *= float(temperature)  # the tempo and velocity curves' x_T only
        fn = get_sampler(sampler)
        kwargs = {"eta": 0.0} if sampler == "ddim" else {}
        mean_curves = curves == "mean" and self.target != "transfer" and x_start is None  # from noise only
        first: list[torch.Tensor] = []

        def step(i: int, n: int, x0: torch.Tensor) -> None:
            if mean_curves and i == 0:
                first.append(x0[..., list(CURVE_ROWS)].clone())  # x0_hat(x_T, T) ~ E[p - mu | s, c]
            if callback:
                callback(i, n, x0)

        self._memo = (None, None)
        try:
            z = fn(wrap(self.denoise) if wrap else self.denoise, x, self.schedule, cond=cond, uncond=uncond,
                   guidance=guidance, prediction=self.prediction, steps=steps, t_start=t_start, generator=generator,
                   callback=step, clip_x0=self.norm.clip, **kwargs)
        finally:
            self._memo = None  # let go of this sample's conditions
        if first:
            z[..., list(CURVE_ROWS)] = first[0]
        z = z.clamp(-self.norm.clip * 1.5, self.norm.clip * 1.5) + mu
        return self.norm.decode_p(z) * mask[..., None].float()


def build_expression(model_cfg: ModelConfig, stats: dict, task: dict) -> Expression:
    """An :class:`Expression` from a model config, codec statistics and task settings."""
    model = Denoiser(model_cfg)
    schedule = Schedule.linear(task.get("timesteps", 1000), task.get("beta_start", 1e-4), task.get("beta_end", 0.02))
    return Expression(model, CodecNormalizer(stats, task.get("p_clip", 5.0)), schedule,
                      target=task.get("target", "gen_noise"), prediction=task.get("prediction", "eps"),
                      cond_drop=task.get("cond_drop", 0.1), cond_drop_all=task.get("cond_drop_all", 0.5),
                      recon_weight=task.get("recon_weight", 0.2))


DEFAULT_CHECKPOINT = Path(__file__).parent / "assets" / "default"


MAX_GUIDANCE = 20.0  # w beyond this extrapolates so far from the conditional that the output is noise


def sampling_settings(config: dict, guidance: float | None = None,
                      temperature: float | None = None) -> tuple[float, float]:
    """Guidance weight w and temperature to sample a checkpoint with: those given, else the
    defaults recorded with the model (``config["sampling"]``, chosen on the valid split when it
    was bundled), else the package's (``DEFAULT_GUIDANCE``, ``DEFAULT_TEMPERATURE``).

    Raises
    ------
    DexterError
        A temperature outside [0, 2], a guidance weight outside [0, ``MAX_GUIDANCE``] or not finite.
    """
    from . import DEFAULT_GUIDANCE, DEFAULT_TEMPERATURE
    from .checks import check_range

    recorded = config.get("sampling", {})
    w = guidance if guidance is not None else float(recorded.get("guidance", DEFAULT_GUIDANCE))
    tau = temperature if temperature is not None else float(recorded.get("temperature", DEFAULT_TEMPERATURE))
    if not 0.0 <= tau <= 2.0:
        raise DexterError(f"--temperature must be in [0, 2], got {tau:g}")
    check_range(w, "--guidance", 0.0, MAX_GUIDANCE)
    return w, tau


def _recorded_applies(config: dict, temperature: float, from_noise: bool) -> bool:
    """Whether the curve settings a model records for its default temperature (spread, curve mode)
    apply: only when it samples from noise at that temperature, where they were judged."""
    return from_noise and temperature == sampling_settings(config)[1]


def sampling_spread(config: dict, spread: tuple[float, float, float] | None, temperature: float,
                    from_noise: bool = True) -> tuple[float, float, float]:
    """The (tempo, velocity, voicing) gains on the rendered curves' range (:mod:`dexter_cli.spread`):
    those given, else the model's recorded ones (``config["sampling"]["spread"]``) when it samples
    from noise at its recorded temperature (the range they restore is what that temperature
    narrows), else (1, 1, 1): the model's own range.
    """
    if spread is not None:
        return float(spread[0]), float(spread[1]), float(spread[2])
    gains = config.get("sampling", {}).get("spread")
    if gains is None or not _recorded_applies(config, temperature, from_noise):
        return 1.0, 1.0, 1.0
    return float(gains.get("tempo", 1.0)), float(gains.get("velocity", 1.0)), float(gains.get("voicing", 1.0))


def sampling_curves(config: dict, curves: str | None, temperature: float, from_noise: bool = True) -> str:
    """Where the rendered curves come from (``curves`` of :meth:`Expression.sample`): the mode given,
    else the model's recorded one (``config["sampling"]["curves"]``) when it samples from noise at its
    recorded temperature (the mode was judged there), else ``"sample"``.

    Raises
    ------
    DexterError
        An unknown mode.
    """
    if curves is None:
        recorded = config.get("sampling", {}).get("curves", "sample")
        curves = recorded if _recorded_applies(config, temperature, from_noise) else "sample"
    return check_curves(curves)


def check_curves(curves: str | None) -> str | None:
    """``curves`` if it is None or one of :data:`CURVE_MODES`.

    Raises
    ------
    DexterError
        An unknown mode.
    """
    if curves is not None and curves not in CURVE_MODES:
        raise DexterError(f"--curves must be one of {', '.join(CURVE_MODES)}, got {curves!r}")
    return curves


def sampling_steps(config: dict, sampler: str = "dpm++", steps: int | None = None) -> int:
    """Denoising steps to sample a checkpoint with: those given, else the DPM-Solver++ steps
    recorded with the model (``config["sampling"]["steps"]``, judged on the valid split when it was
    bundled), else the package's ``DEFAULT_STEPS``. A recorded count applies to ``dpm++`` only: it
    was judged with that sampler, and DDIM needs more steps for the same quality.

    Raises
    ------
    DexterError
        Fewer than one step.
    """
    from . import DEFAULT_STEPS

    recorded = config.get("sampling", {}).get("steps")
    if steps is None:
        steps = int(recorded) if recorded is not None and sampler == "dpm++" else DEFAULT_STEPS
    if steps < 1:
        raise DexterError(f"--steps must be at least 1, got {steps}")
    return int(steps)


def load_expression(checkpoint: "str | None" = None) -> tuple[Expression, dict]:
    """Load an inference checkpoint (the bundled default model when ``checkpoint`` is None).

    Returns
    -------
    expression : Expression
        In eval mode.
    config : dict
        The checkpoint's config (model, task, codec, training facts).

    Raises
    ------
    DexterError
        No such checkpoint, a damaged one, or one that does not fit this codec.
    """
    from .checkpoint import load_inference, weights_mismatch
    from .data.codec import C_CODEC_NAMES, P_CODEC_NAMES
    from .data.vocab import S_CODEC_NAMES

    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if checkpoint is None and not (path / "model.safetensors").is_file():
        raise DexterError("no bundled default model in this installation: pass --checkpoint <run>/checkpoints/best")
    state, config = load_inference(path)
    codec = config.get("codec", {})
    for key, names in (("p_codec_names", P_CODEC_NAMES), ("s_codec_names", S_CODEC_NAMES), ("c_codec_names", C_CODEC_NAMES)):
        if list(codec.get(key, [])) != list(names):
            raise DexterError(f"checkpoint {path} was trained on another codec ({key} differ): retrain or use a matching dexter")
    n = codec.get("max_note_seq")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise DexterError(f"checkpoint {path}: its config gives the segment length max_note_seq {n!r}; it must be an "
                          "integer of 2 or more (the checkpoint is damaged)")
    try:
        model_cfg = ModelConfig.from_dict(config["model"])
        expr = build_expression(model_cfg, codec["stats"], config.get("task", {}))
    except (KeyError, RuntimeError, TypeError) as exc:
        raise DexterError(f"checkpoint {path} does not fit its config: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())}") from exc
    mismatch = weights_mismatch(expr.model.state_dict(), state)
    if mismatch:
        raise DexterError(f"checkpoint {path} does not fit its config: {mismatch}")
    expr.model.load_state_dict(state, strict=True)
    expr.model.eval()
    return expr, config
