#!/usr/bin/env bash
# One node, several GPUs. Submit with: sbatch scripts/slurm_train_single_node.sh [overrides]
#SBATCH --job-name=dexter-train
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120            # SIGTERM to every task two minutes before the limit: dexter saves and exits
#SBATCH --requeue
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
RUN_DIR=${RUN_DIR:-runs/paper}
RESUME=""
[ -d "$RUN_DIR/state" ] && RESUME="--resume"   # a requeued job continues where it stopped
status=0
srun accelerate launch --num_processes "${SLURM_GPUS_ON_NODE:-4}" --num_machines 1 --mixed_precision bf16 \
  --dynamo_backend no -m dexter_cli train --config configs/train.yaml model=configs/model/paper.yaml \
  optim.mixed_precision=bf16 --run-dir "$RUN_DIR" $RESUME "$@" || status=$?
# stopped by a signal with its state saved (dexter leaves RUN_DIR/interrupted): back in the queue,
# to continue with --resume (whatever status the launcher passed on)
if [ "$status" -ne 0 ] && [ -f "$RUN_DIR/interrupted" ]; then scontrol requeue "$SLURM_JOB_ID"; fi
exit "$status"
