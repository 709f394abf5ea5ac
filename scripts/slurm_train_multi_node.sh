#!/usr/bin/env bash
# Several nodes x several GPUs. Submit with: sbatch scripts/slurm_train_multi_node.sh [overrides]
#SBATCH --job-name=dexter-train-mn
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120            # SIGTERM to every task two minutes before the limit: dexter saves and exits
#SBATCH --requeue
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
RUN_DIR=${RUN_DIR:-runs/paper-mn}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
RESUME=""
[ -d "$RUN_DIR/state" ] && RESUME="--resume"
status=0
srun bash -c "accelerate launch --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) --num_machines $SLURM_NNODES \
  --machine_rank \$SLURM_NODEID --main_process_ip $MASTER_ADDR --main_process_port $MASTER_PORT \
  --mixed_precision bf16 --dynamo_backend no \
  -m dexter_cli train --config configs/train.yaml model=configs/model/paper.yaml optim.mixed_precision=bf16 \
  --run-dir $RUN_DIR $RESUME $*" || status=$?
# stopped by a signal with its state saved (dexter leaves RUN_DIR/interrupted): back in the queue,
# to continue with --resume (whatever status the launcher passed on)
if [ "$status" -ne 0 ] && [ -f "$RUN_DIR/interrupted" ]; then scontrol requeue "$SLURM_JOB_ID"; fi
exit "$status"
