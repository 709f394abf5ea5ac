"""One wrapper for training and sampling, so the two cannot drift apart.

:class:`Expression` holds the denoiser, the codec normaliser, the schedule, the prior mean and the
task settings. ``loss(batch)`` is DExter's training objective; the ``sample_*`` methods run a
sampler over the same denoiser call, one method per start:

gen_noise (:meth:`Expression.sample_from_noise`)
    x_T ~ N(0, I); conditions s_codec and c_codec (c is a standalone condition).
variation (:meth:`Expression.sample_variation`)
    a performance noised to ``strength`` of the schedule, then denoised toward the conditions.
transfer (:meth:`Expression.sample_transfer`, DExter Sec. 3.3)
    the "noise" is the paired source performance: x_t = sqrt(ab) x0_target +
    sqrt(1 - ab) x_source; the condition is c_target - c_source; sampling starts
    from the source and adds no variance (DDIM, eta = 0).

With a prior mean mu(s) (``task.prior: context``, :mod:`dexter_cli.prior`) every p_codec above is
taken relative to it: the diffusion runs over p - mu(s) and a sample is mu(s) + x0_hat. Without
one, mu = 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence, Union

import torch

from .config import TaskConfig
from .data.codec import CURVE_ROWS
from .diffusion import Schedule, diffusion_loss, get_sampler, randn
from .diffusion.samplers import Guided
from .diffusion.schedule import check_prediction
from .errors import DexterError
from .model import Denoiser, ModelConfig
from .model.normalize import CodecNormalizer
from .prior import PRIOR_PREFIX, Prior
from .sampling import SamplingOptions

CONDITION_CACHE_BYTES = 256 * 2**20  # the conditions' projections a sampling run keeps (a 10,000-note piece's)

Callback = Callable[[int, int, torch.Tensor], None]
Wrap = Callable[[Callable], Callable]
Draws = Union[torch.Generator, Sequence[torch.Generator]]  # one generator, or one per example


def per_example(generator: torch.Generator | Sequence[torch.Generator], n: int) -> list[torch.Generator]:
    """One generator per example.

    Parameters
    ----------
    generator : torch.Generator or sequence of torch.Generator
        One generator, which seeds ``n`` new ones, or ``n`` generators, used as they are.
    n : int
        The batch size.

    Returns
    -------
    list of torch.Generator

    Raises
    ------
    DexterError
        A sequence whose length is not ``n``.
    """
    if isinstance(generator, (list, tuple)):
        if len(generator) != n:
            raise DexterError(f"{len(generator)} generators for a batch of {n}")
        return list(generator)
    seeds = torch.randint(0, 2 ** 62, (n,), generator=generator).tolist()
    return [torch.Generator().manual_seed(int(s)) for s in seeds]

class Expression:
    """Denoiser + codec normalisation + diffusion settings + prior mean.

    Parameters
    ----------
    model : Denoiser
    normalizer : CodecNormalizer
    schedule : Schedule
    task : TaskConfig
        target, prediction, condition dropout and reconstruction weight (their defaults live there).
    prior : Prior, optional
        mu(s); None: mu = 0.
    """

    def __init__(self, model: Denoiser, normalizer: CodecNormalizer, schedule: Schedule, task: TaskConfig,
                 prior: Prior | None = None):
        self.model = model
        self.norm = normalizer
        self.schedule = schedule
        self.target = task.target
        self.prediction = check_prediction(task.prediction)
        self.cond_drop = task.cond_drop
        self.cond_drop_all = task.cond_drop_all
        self.recon_weight = task.recon_weight
        self.prior = prior

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
        """The denoiser call of training: every call has new conditions."""
        return self.model(x, t, cond["s"], cond["c"], cond["mask"], cond["drop_s"], cond["drop_c"])

    def sampling_denoiser(self, cache_bytes: int = CONDITION_CACHE_BYTES
                          ) -> Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor]:
        """The denoiser callable handed to a sampler.

        The network's projection of the conditions, which no step changes, is computed once per
        ``cond`` dict (samplers and the window wrapper pass the same dicts at every step) and held
        by this callable only.

        Parameters
        ----------
        cache_bytes : int, optional
            The most the held projections may take in all; beyond it, a dict's projection is
            computed at each call.

        Returns
        -------
        callable
            ``denoise(x_t, t, cond) -> output``.
        """
        memo: dict[int, tuple[dict, torch.Tensor]] = {}  # id(cond) -> (cond, its projection)
        nbytes = lambda h: h.numel() * h.element_size() if torch.is_tensor(h) else 0  # noqa: E731

        def denoise(x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
            args = (cond["s"], cond["c"], cond["mask"], cond["drop_s"], cond["drop_c"])
            entry = memo.get(id(cond))
            if entry is not None and entry[0] is cond:
                return self.model(x, t, *args, cond_h=entry[1])
            h = self.model.condition(*args)
            if sum(nbytes(held) for _, held in memo.values()) + nbytes(h) <= cache_bytes:
                memo[id(cond)] = (cond, h)
            return self.model(x, t, *args, cond_h=h)

        return denoise

    def prior_mean(self, s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mu(s), the prior mean of the normalised p_codec given the normalised score ``s``
        (0 without a prior)."""
        if self.prior is None:
            return torch.zeros((*s.shape[:-1], len(self.norm.p_mean)), dtype=s.dtype, device=s.device)
        return self.prior(s, mask)

    # training ---------------------------------------------------------------
    def loss(self, batch: dict, generator: Draws, device: torch.device | str = "cpu",
             notes: float | None = None) -> dict:
        """DExter's loss on one batch (random t, noise and condition dropout from ``generator``).

        ``notes``: the number of played notes the loss is a mean over (default this batch's); a part
        of a larger batch (a micro-batch, one process's share) passes the whole batch's, so that the
        parts' gradients add up to the whole batch's."""
        d = self.training_draw(batch, generator, device)
        out = self.denoise(d["x_t"], d["t"], d["cond"])
        return diffusion_loss(out, d["x0"], d["x_t"], d["noise"], d["ab"], d["cond"]["mask"], self.prediction,
                              self.recon_weight, notes=notes)

    def training_draw(self, batch: dict, generator: Draws, device: torch.device | str = "cpu") -> dict:
        """One draw of the training distribution for a batch: the step ``t``, the conditions ``cond``
        after dropout, the clean residual ``x0`` = p - mu(s), the ``noise`` (the source for transfer),
        ``ab`` = alpha_bar_t and the noised ``x_t``. Each example draws from its own generator
        (``generator``: one per example, or one that seeds them), in a fixed order, so that an example's
        draws do not depend on the batch it is in (the loss, and the output-layer refit of
        scripts/research/headfit.py, see the same draws)."""
        batch = {k: v.to(device) for k, v in batch.items()}
        B, C = batch["p_codec"].shape[0], batch["c_codec"].shape[-1]
        gens = per_example(generator, B)
        t = torch.cat([torch.randint(0, self.schedule.T, (1,), generator=g) for g in gens]).to(device)
        # classifier-free guidance: drop the score, each control, and (often) all controls at once,
        # so that sampling with any subset of controls, none included, is in distribution
        drop_s = (torch.cat([torch.rand(1, generator=g) for g in gens]) < self.cond_drop).to(device)
        drop_c = torch.stack([torch.rand(C, generator=g) for g in gens]) < self.cond_drop
        drop_c |= torch.stack([torch.rand(1, generator=g) for g in gens]) < self.cond_drop_all
        drop_c = (drop_c | ~self.norm.c_active[None]).to(device)
        cond = self.conditions(batch, drop_s, drop_c)
        mu = self.prior_mean(cond["s"], cond["mask"])  # prior mean mu(s) of the (undropped) score
        x0 = self.norm.encode_p(batch["p_codec"].float()) - mu
        if self.target == "transfer":
            noise = self.norm.encode_p(batch["source_p"].float()) - mu
        else:
            noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens]).to(device)
        ab = self.schedule.ab(t).to(device=device, dtype=x0.dtype)
        x_t = self.schedule.q_sample(x0, t, noise)
        return {"t": t, "cond": cond, "x0": x0, "noise": noise, "ab": ab, "x_t": x_t}

    # sampling ---------------------------------------------------------------
    @torch.inference_mode()
    def sample(self, batch: dict, options: SamplingOptions, *, generator: torch.Generator | None = None,
               x_start: torch.Tensor | None = None, drop_c: torch.Tensor | None = None,
               callback: Callback | None = None, wrap: Wrap | None = None) -> torch.Tensor:
        """Sample raw p_codec for a batch of segments, starting as the task and ``x_start`` say.

        Parameters
        ----------
        batch : dict
            ``s_codec``, ``c_codec``, ``mask`` (and ``source_p``/``source_c`` for transfer).
        options : SamplingOptions
            Sampler, steps, guidance w, strength and the curve decoding.
        generator : torch.Generator, optional
        x_start : tensor, optional
            Raw p_codec to start from (a variation of it); noised to ``options.strength``.
        drop_c : (B, C) bool tensor, optional
            Controls to leave free (replaced by their nulls).
        callback : callable, optional
            ``callback(i, n, x0_hat)`` after each step.
        wrap : callable, optional
            Wraps the denoiser callable (e.g. a WindowedDenoiser for whole pieces).

        Returns
        -------
        (B, N, 5) raw p_codec.
        """
        cond = self.conditions(batch, drop_c=drop_c)
        mu = self.prior_mean(cond["s"], cond["mask"])
        run = _Run(self, cond, options, generator, callback, wrap)
        if self.target == "transfer":
            z = self.sample_transfer(batch, mu, run)
        elif x_start is not None:
            z = self.sample_variation(x_start, mu, run)
        else:
            z = self.sample_from_noise(mu, run)
        z = z.clamp(-self.norm.clip * 1.5, self.norm.clip * 1.5) + mu
        return self.norm.decode_p(z) * batch["mask"][..., None].float()

    def sample_from_noise(self, mu: torch.Tensor, run: "_Run") -> torch.Tensor:
        """x_T ~ N(0, I), the curve rows' noise scaled by the temperature; with ``curves="mean"``
        the curve rows come from the first step's x0_hat(x_T, T) ~ E[p - mu | s, c], the network's
        reading of the curves' mean (the note-level rows are the sampler's either way)."""
        opts = run.options
        x = randn(mu.shape, run.generator, mu.device)
        x[..., list(CURVE_ROWS)] *= float(opts.temperature)  # the tempo and velocity curves' x_T only
        first: list[torch.Tensor] = []
        if opts.curves == "mean":
            run.on_first_step(lambda x0: first.append(x0[..., list(CURVE_ROWS)].clone()))
        z = run(x)
        if first:
            z[..., list(CURVE_ROWS)] = first[0]
        return z

    def sample_variation(self, x_start: torch.Tensor, mu: torch.Tensor, run: "_Run") -> torch.Tensor:
        """A performance noised to ``strength`` of the schedule, then denoised."""
        t_start = self._t_start(run.options.strength)
        x0 = self.norm.encode_p(x_start.float()) - mu
        noise = randn(mu.shape, run.generator, mu.device)
        x = self.schedule.q_sample(x0, torch.full((mu.shape[0],), t_start), noise)
        return run(x, t_start=t_start)

    def sample_transfer(self, batch: dict, mu: torch.Tensor, run: "_Run") -> torch.Tensor:
        """The paper's transfer: start from the source performance, DDIM without added variance."""
        x = self.norm.encode_p(batch["source_p"].float()) - mu
        return run(x, t_start=self._t_start(run.options.strength), sampler="ddim")

    def _t_start(self, strength: float) -> int:
        return max(0, min(self.schedule.T - 1, round(strength * self.schedule.T) - 1))


class _Run:
    """One sampler run of :meth:`Expression.sample`: the denoiser, guidance and callbacks of a call."""

    def __init__(self, expr: Expression, cond: dict, options: SamplingOptions, generator: torch.Generator | None,
                 callback: Callback | None, wrap: Wrap | None):
        self.expr, self.cond, self.options, self.generator = expr, cond, options, generator
        self.callback, self.wrap = callback, wrap
        self.first_step: Callable[[torch.Tensor], None] | None = None

    def on_first_step(self, fn: Callable[[torch.Tensor], None]) -> None:
        self.first_step = fn

    def __call__(self, x: torch.Tensor, t_start: int | None = None, sampler: str | None = None) -> torch.Tensor:
        expr, opts = self.expr, self.options
        sampler = sampler or opts.sampler
        denoise = expr.sampling_denoiser()

        def step(i: int, n: int, x0: torch.Tensor) -> None:
            if i == 0 and self.first_step is not None:
                self.first_step(x0)
            if self.callback:
                self.callback(i, n, x0)

        uncond = expr.unconditional(self.cond) if opts.guidance != 1.0 else None
        net = Guided(self.wrap(denoise) if self.wrap else denoise, self.cond, uncond, opts.guidance, expr.prediction,
                     expr.norm.clip)
        kwargs = {"eta": 0.0} if sampler == "ddim" else {}
        return get_sampler(sampler)(net, x, expr.schedule, steps=opts.steps, t_start=t_start,
                                    generator=self.generator, callback=step, **kwargs)


def build_expression(model_cfg: ModelConfig, stats: dict, task: TaskConfig, prior: Prior | None = None) -> Expression:
    """An :class:`Expression` from a model config, codec statistics, task settings and a prior."""
    model = Denoiser(model_cfg)
    schedule = Schedule.linear(task.timesteps, task.beta_start, task.beta_end)
    return Expression(model, CodecNormalizer(stats, task.p_clip), schedule, task, prior)


DEFAULT_CHECKPOINT = Path(__file__).parent / "assets" / "default"


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
        prior = Prior.from_state_dict(state) or _prior_in_stats(codec["stats"])
        kind = config.get("task", {}).get("prior", "none")
        if kind != "none" and (prior is None or (kind == "level") != (prior.level is not None)):
            raise DexterError(f"checkpoint {path} was trained around the {kind} prior mean, but carries "
                              f"{'none' if prior is None else 'another'} (the checkpoint is damaged)")
        state = {k: v for k, v in state.items() if not k.startswith(PRIOR_PREFIX)}
        expr = build_expression(model_cfg, codec["stats"], TaskConfig.from_dict(config.get("task", {})), prior)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise DexterError(f"checkpoint {path} does not fit its config: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())}") from exc
    mismatch = weights_mismatch(expr.model.state_dict(), state)
    if mismatch:
        raise DexterError(f"checkpoint {path} does not fit its config: {mismatch}")
    expr.model.load_state_dict(state, strict=True)
    expr.model.eval()
    return expr, config


def _prior_in_stats(stats: dict) -> Prior | None:
    """The prior of a checkpoint written before priors were stored as tensors: its weights were JSON
    lists in the codec statistics."""
    w = stats.get("prior_weights")
    if w is None:
        return None
    return Prior(torch.tensor(w, dtype=torch.float32), tuple(stats.get("prior_context", ())))
