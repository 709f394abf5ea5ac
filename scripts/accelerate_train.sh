#!/usr/bin/env bash
# Train on all GPUs of this machine with HuggingFace Accelerate.
#   bash scripts/accelerate_train.sh [extra dexter train options / key=value overrides]
set -euo pipefail
NUM_GPUS=${NUM_GPUS:-$(python -c "import torch; print(max(1, torch.cuda.device_count()))")}
accelerate launch --num_processes "$NUM_GPUS" --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  -m dexter_cli train --config configs/train.yaml model=configs/model/paper.yaml optim.mixed_precision=bf16 "$@"
