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
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
if [ ! -x "$PYTHON" ]; then
  echo "error: $PYTHON not found: run \`bash tools/setup_env.sh\` first, or set PYTHON=/path/to/python" >&2
  exit 1
fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --nproc_per_node="$NPROC" --master_port="${PORT:-29500}" \
  "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
