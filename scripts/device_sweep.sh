#!/usr/bin/env bash
# Train several model sizes at once on one lent GPU inside a fixed wall-clock budget.
#
# Runs on the device machine (its python3 has torch, accelerate, typer, rich, safetensors, yaml),
# from the repository root, with the packed store (scripts/pack_store.py) carried in artifacts/.
#   bash scripts/device_sweep.sh BUDGET_S NAME=MODEL_YAML:LR ...
# First the CUDA tests (sampling and the loss on the GPU equal the CPU's). Each run then gets the
# same number of seconds: a 150-step probe of all runs together measures their speed (without their
# priors: the prior fits take different times, and a probe left alone on the GPU runs too fast), then each
# trains a full cosine schedule sized to the time left (runs still going at the deadline are
# stopped with SIGTERM, which saves their state). The last inference checkpoint (EMA weights) and
# the metrics of each run are tarred into $OUT/NAME.tar.
#   NAME=MODEL_YAML:LR[:BATCH[:OVERRIDES]]   (BATCH defaults to 128; OVERRIDES: comma-separated
#   config overrides for that run, e.g. task.prior=mlp,task.prior_alpha=100000,seed=1)
# Environment: CONFIG, the base config (configs/cpu-small.yaml); PACK, the packed store
# (artifacts/store.pack; carry it); SAME_STEPS=1 gives every run the
# step count of the slowest, so that runs differing in one setting (a seed) compare like for like;
# STEP_FRACTION (0.85), the share of the measured speed x time left that a schedule is sized to.
# Measured on an H100 (fp32): the 128x12 model at batch 256 runs 7-7.5 it/s per run with two or four
# runs at once (each run is bound by its own kernel launches), so run several; at batch 512-1024 four
# runs saturate the GPU at about 2 it/s each.
set -euo pipefail
budget=$1; shift
pids=()
start=$(date +%s)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
python3 scripts/pack_store.py unpack "${PACK:-artifacts/store.pack}" /tmp/store
common=(--config "${CONFIG:-configs/cpu-small.yaml}" data.path=/tmp/store --quiet)
parse() {
  name=${1%%=*}; IFS=: read -r model lr batch ovr <<< "${1#*=}"; batch=${batch:-128}
  extra=(); [ -n "${ovr:-}" ] && IFS=, read -ra extra <<< "$ovr"; return 0
}

for spec in "$@"; do
  parse "$spec"
  python3 -m dexter_cli train "${common[@]}" model="$model" --lr "$lr" --batch-size "$batch" --max-steps "${PROBE_STEPS:-150}" "${extra[@]}" task.prior=none \
    eval.every=100000 eval.checkpoint_every=100000 --run-dir /tmp/probe_$name > /tmp/probe_$name.log 2>&1 &
done
wait
probe_end=$(date +%s)
left=$(( budget - (probe_end - start) - 45 ))
echo "probe took $((probe_end - start)) s; $left s left for training"

declare -A run_steps
for spec in "$@"; do
  parse "$spec"
  it_s=$(python3 -c "import json; r=[json.loads(l) for l in open('/tmp/probe_$name/metrics.jsonl')]; print([x['it_s'] for x in r if 'it_s' in x][-1])")
  run_steps[$name]=$(python3 -c "print(max(int($it_s * $left * ${STEP_FRACTION:-0.85} / 250) * 250, 10))")
  echo "$name: $it_s it/s in the probe -> ${run_steps[$name]} steps"
done
if [ "${SAME_STEPS:-0}" = 1 ]; then
  fewest=$(printf '%s\n' "${run_steps[@]}" | sort -n | head -1)
  for k in "${!run_steps[@]}"; do run_steps[$k]=$fewest; done
  echo "every run trains $fewest steps"
fi
for spec in "$@"; do
  parse "$spec"
  steps=${run_steps[$name]}
  python3 -m dexter_cli train "${common[@]}" model="$model" --lr "$lr" --batch-size "$batch" --max-steps "$steps" "${extra[@]}" \
    optim.warmup_steps=500 eval.every=1000 eval.checkpoint_every=1000 --run-dir /tmp/run_$name > /tmp/run_$name.log 2>&1 &
  pids+=($!)
done
deadline=$(( start + budget ))
alive() { for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while alive && [ "$(date +%s)" -lt "$deadline" ]; do sleep 3; done
kill -TERM "${pids[@]}" 2>/dev/null || true
wait || true
for spec in "$@"; do
  parse "$spec"
  tail -2 /tmp/run_$name.log
  tar -cf "$OUT/$name.tar" -C /tmp/run_$name checkpoints/last metrics.jsonl config.yaml || true
done
echo "total $(( $(date +%s) - start )) s"
