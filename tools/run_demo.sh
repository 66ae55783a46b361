#!/usr/bin/env bash
# The main job: set up .venv, generate the demo data unless up to date, train the demo config
# through tools/train.py on CPU (or CUDA when present), evaluate it with tools/test.py, print mIoU.
#   bash tools/run_demo.sh [CONFIG] [extra tools/train.py options]
# WORK_DIR: the work dir (default work_dirs/<config name>); DEMO_DATA: the demo data root
# (default data/demo_cityscapes, generated if absent; another root is passed to both tools).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
PY="$ROOT/.venv/bin/python"
CONFIG=${1:-configs/rass/rass_tiny_demo.py}
shift || true
NAME=$(basename "$CONFIG" .py)
WORK_DIR=${WORK_DIR:-work_dirs/$NAME}
DATA=${DEMO_DATA:-data/demo_cityscapes}
"$PY" tools/make_demo_data.py --out "$DATA"  # kept when up to date, else regenerated
DATA_OPTS=()
if [ "$DATA" != data/demo_cityscapes ]; then
  DATA_OPTS=(--cfg-options "train_dataloader.dataset.data_root=$DATA"
             "val_dataloader.dataset.data_root=$DATA" "test_dataloader.dataset.data_root=$DATA")
fi
start=$(date +%s)
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@" "${DATA_OPTS[@]}"
CKPT=$(cat "$WORK_DIR/last_checkpoint")
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test" "${DATA_OPTS[@]}" 2>&1 \
  | tee "$WORK_DIR/test.log"
MIOU=$(grep -o 'mIoU: [0-9.]*' "$WORK_DIR/test.log" | tail -n 1)
echo "[demo] $CONFIG: $MIOU (val, demo data) — trained and evaluated in $(( $(date +%s) - start )) s; checkpoint $CKPT"
