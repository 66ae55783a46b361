#!/usr/bin/env bash
# The main job: set up .venv, then the RASS method end to end on the demo data (tools/rass_demo.py:
# demo data -> the pretrained tiny Stable Diffusion -> SCR -> its LoRA merged into RASS, with the
# RASS paper's comparison rows), or, given a config, train and evaluate that one config.
#   bash tools/run_demo.sh                                   # the RASS pipeline (docs/rass_demo.md)
#   bash tools/run_demo.sh CONFIG [extra tools/train.py options]
# WORK_DIR: the work dir (default work_dirs/rass_demo, or work_dirs/<config name>); DEMO_DATA: the
# demo data root (default data/demo_cityscapes; made, or remade when stale, by make_demo_data.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
PY="$ROOT/.venv/bin/python"
DATA=${DEMO_DATA:-data/demo_cityscapes}
if [ $# -eq 0 ]; then
  exec "$PY" tools/rass_demo.py --work-dir "${WORK_DIR:-work_dirs/rass_demo}" --data-root "$DATA"
fi
CONFIG=$1
shift
NAME=$(basename "$CONFIG" .py)
WORK_DIR=${WORK_DIR:-work_dirs/$NAME}
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
