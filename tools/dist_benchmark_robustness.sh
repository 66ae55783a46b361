#!/usr/bin/env bash
# The robustness benchmark on several processes of this machine (or one node of several), with
# the venv's torchrun; the test images of every cell are split across the processes:
#   tools/dist_benchmark_robustness.sh CONFIG CHECKPOINT NPROC [tools/benchmark_robustness.py options]
# NPROC processes: one per GPU with CUDA (nccl), CPU processes otherwise (gloo).
# Environment: PYTHON (default .venv/bin/python), NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT NPROC [tools/benchmark_robustness.py options]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
exec bash "$(dirname "${BASH_SOURCE[0]}")/torchrun.sh" "$NPROC" tools/benchmark_robustness.py \
  "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
