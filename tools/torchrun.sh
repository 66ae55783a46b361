#!/usr/bin/env bash
# The launcher behind dist_train.sh, dist_test.sh and dist_benchmark_robustness.sh: the venv's
# torchrun on this machine (or one node of several), PYTHONPATH set to the repository:
#   tools/torchrun.sh NPROC SCRIPT [script arguments]
# Environment: PYTHON (default .venv/bin/python), NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
NPROC=$1
SCRIPT=$2
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
  "$ROOT/$SCRIPT" "$@"
