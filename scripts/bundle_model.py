"""Ship a trained checkpoint as the bundled default model (dexter_cli/assets/default).

    python scripts/bundle_model.py runs/default/checkpoints/best [--out DIR] [--name dexter-default-v12] [--hardware "..."]
                                   [--fact KEY=VALUE ...] [--guidance W] [--temperature T] [--steps S]
                                   [--dtype float32|float16] [--spread TEMPO,VELOCITY[,VOICING]]
                                   [--curves sample|mean]

Re-exports the weights with training facts (name, data, steps, wall time, hardware) added to
the checkpoint config, and the sampling defaults chosen for it on the valid split
(``config["sampling"]``: what render, test and evaluate use when not told), verified by loading
it back. ``--dtype float16`` stores the weights rounded to float16 (half the size; they load as float32);
the default keeps the checkpoint's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from dexter_cli.checkpoint import export_inference, load_inference
from dexter_cli.engine import DEFAULT_CHECKPOINT, _prior_in_stats, load_expression
from dexter_cli.model.config import RETIRED
from dexter_cli.prior import PRIOR_PREFIX
from dexter_cli.sampling import CURVE_MODES, SamplingOptions
from dexter_cli.spread import parse_spread


def stored_prior(state: dict, config: dict) -> dict:
    """The weights with the prior as tensors: a checkpoint written when the prior's weights were JSON
    lists in the codec statistics is brought to the current layout (its values unchanged)."""
    stats = config["codec"]["stats"]
    prior = None if any(k.startswith(PRIOR_PREFIX) for k in state) else _prior_in_stats(stats)
    if prior is not None:
        state = {**state, **prior.state_dict()}
    for key in ("prior_weights", "prior_context"):
        stats.pop(key, None)
    for key in RETIRED:
        config["model"].pop(key, None)
    config["task"].pop("prior_fit", None)
    return state


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--name", default=None, help="default: the name the checkpoint records (a training checkpoint has none)")
    ap.add_argument("--hardware", default=None, help="default: what the checkpoint records, else this machine")
    ap.add_argument("--fact", action="append", default=[],
                    help="KEY=VALUE recorded in the config's training facts (VALUE parsed as JSON when it is JSON)")
    ap.add_argument("--guidance", type=float, default=None, help="the model's default guidance weight w")
    ap.add_argument("--temperature", type=float, default=None, help="the model's default temperature")
    ap.add_argument("--steps", type=int, default=None, help="the model's default DPM-Solver++ steps")
    ap.add_argument("--spread", default=None,
                    help="the model's gains on the tempo and velocity curves' range and on the voicing at its default "
                         "temperature (dexter_cli/spread.py), TEMPO,VELOCITY[,VOICING]; 1 records none")
    ap.add_argument("--curves", choices=CURVE_MODES, default=None,
                    help="where the model's curves come from at its default temperature (dexter render --curves); "
                         "sample records none")
    ap.add_argument("--dtype", choices=("float32", "float16"), default=None,
                    help="how the weights are stored (float16: half the size); default: as the checkpoint stores them")
    ap.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT,
                    help="where to write it (default the bundled model's folder; elsewhere: a candidate to evaluate)")
    args = ap.parse_args()
    state, config = load_inference(Path(args.checkpoint))
    facts = config["training"]
    # a checkpoint bundled or refitted before keeps its facts unless told otherwise
    facts["name"] = args.name or facts.get("name")
    if not facts["name"]:
        ap.error("the checkpoint records no model name: give --name")
    facts["hardware"] = (args.hardware or facts.get("hardware")
                         or f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores")
    facts.setdefault("run_dir", str(Path(args.checkpoint).parents[1]))
    for item in args.fact:
        key, _, value = item.partition("=")
        try:
            config["training"][key] = json.loads(value)
        except json.JSONDecodeError:
            config["training"][key] = value
    sampling = {k: v for k, v in (("guidance", args.guidance), ("temperature", args.temperature), ("steps", args.steps))
                if v is not None}
    if sampling:
        config["sampling"] = {**config.get("sampling", {}), **sampling}
    if args.spread is not None:
        tempo, velocity, voicing = parse_spread(args.spread)
        config.setdefault("sampling", {}).pop("spread", None)
        if (tempo, velocity, voicing) != (1.0, 1.0, 1.0):
            config["sampling"]["spread"] = {"tempo": tempo, "velocity": velocity, "voicing": voicing}
    if args.curves is not None:
        config.setdefault("sampling", {}).pop("curves", None)
        if args.curves != "sample":
            config["sampling"]["curves"] = args.curves
    SamplingOptions.for_model(config)  # a bad recorded default fails here, before the bundled model is replaced
    state = stored_prior(state, config)
    dtype = args.dtype or config.get("weights_dtype", "float32")
    if dtype not in ("float32", "float16"):
        ap.error(f"the checkpoint stores its weights as {dtype}: give --dtype float32 or float16")
    export_inference(args.out, state, config, dtype=getattr(torch, dtype))  # writes format, dtype, sha256
    expr, cfg = load_expression(None if args.out == DEFAULT_CHECKPOINT else str(args.out))
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"bundled {facts['name']}: step {cfg['training']['step']}, sampling defaults {cfg.get('sampling', {})}, "
          f"weights {cfg['weights_dtype']}, {size / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
