#!/usr/bin/env bash
# Distributed training on this machine (or one node of several) with the venv's torchrun:
#   tools/dist_train.sh CONFIG NPROC [mmseg tools/train.py options]
# NPROC processes: one per GPU with CUDA (nccl), CPU processes otherwise (gloo, see README).
# Environment: PYTHON (default .venv/bin/python), NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NPROC [tools/train.py options]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
exec bash "$(dirname "${BASH_SOURCE[0]}")/torchrun.sh" "$NPROC" tools/train.py "$CONFIG" --launcher pytorch "$@"
