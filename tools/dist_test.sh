#!/usr/bin/env bash
# Distributed testing on this machine (or one node of several) with the venv's torchrun:
#   tools/dist_test.sh CONFIG CHECKPOINT NPROC [mmseg tools/test.py options]
# NPROC processes: one per GPU with CUDA (nccl), CPU processes otherwise (gloo, see README).
# Environment: PYTHON (default .venv/bin/python), NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT NPROC [tools/test.py options]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
exec bash "$(dirname "${BASH_SOURCE[0]}")/torchrun.sh" "$NPROC" tools/test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
