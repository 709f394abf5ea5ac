"""Benchmark training throughput: loader vs model, small and paper-size configs, peak memory.

    python scripts/bench/bench_train.py --data data/codec_N=300_mixup [--steps 5] [--batch-size 16]

Prints segments/s of the loader (memory-mapped store -> tensors) and of full training steps
(forward, backward, AdamW) per model config, medians over several steps after a warm-up,
on the available device (CUDA if present).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np
import torch

from dexter_cli.config import load_model_yaml
from dexter_cli.data.dataset import SegmentSet
from dexter_cli.data.store import CodecStore
from dexter_cli.engine import build_expression
from dexter_cli.model import ModelConfig
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/codec_N=300_mixup")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--configs", default="configs/model/small.yaml,configs/model/paper.yaml")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    store = CodecStore(args.data)
    train = SegmentSet(store, "train")
    rng = np.random.default_rng(0)
    results: dict = {"device": torch.cuda.get_device_name() if device == "cuda" else f"cpu x{torch.get_num_threads()} threads",
                     "segments_in_train": len(train)}
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        train.batch(rng.integers(0, len(train), args.batch_size))
        times.append(time.perf_counter() - t0)
    results["loader_segments_s"] = args.batch_size / statistics.median(times)
    for path in args.configs.split(","):
        cfg = ModelConfig(**load_model_yaml(path, Path(".")))
        cfg.s_dim, cfg.c_dim = len(store.meta["s_codec_names"]), len(store.meta["c_codec_names"])
        torch.manual_seed(0)
        expr = build_expression(cfg, store.meta["stats"], {})
        expr.model.to(device)
        opt = torch.optim.AdamW(expr.model.parameters(), lr=1e-4)
        step_times = []
        for s in range(args.steps + 1):
            batch = train.batch(rng.integers(0, len(train), args.batch_size))
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = expr.loss(batch, torch.Generator().manual_seed(s), device)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device == "cuda":
                torch.cuda.synchronize()
            if s:  # the first step warms up
                step_times.append(time.perf_counter() - t0)
        n_params = sum(p.numel() for p in expr.model.parameters())
        results[Path(path).stem] = {"params_M": n_params / 1e6, "step_s": statistics.median(step_times),
                                    "train_segments_s": args.batch_size / statistics.median(step_times),
                                    "receptive_field_notes": cfg.receptive_field()}
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device == "cuda":
        results["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
