#!/usr/bin/env bash
# Create (or reuse) .venv at the repository root and install mmseg_rass with its dependencies.
#
# Environment knobs:
#   TORCH_SPEC   pip spec for torch+torchvision when none is importable in .venv
#                (default "torch==2.14.1 torchvision==0.29.1"); an installed torch is kept.
#   MMCV_FULL=1  build full mmcv 2.1.0 with compiled ops against the installed torch (CUDA when
#                nvcc is found) instead of mmcv-lite; the wheel is cached in
#                ${MMCV_WHEEL_CACHE:-~/.cache/mmseg_rass/wheels}. About 13 min on 2 CPU cores.
#   PYTHON       interpreter used to create .venv (default python3).
#   SYSTEM_SITE_PACKAGES=1  create .venv with --system-site-packages, so that a torch installed
#                for that interpreter (e.g. your CUDA build) is seen and kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  if [ "${SYSTEM_SITE_PACKAGES:-0}" = "1" ]; then
    "${PYTHON:-python3}" -m venv --system-site-packages "$VENV"
  else
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
fi

# Reuse a finished install while setup.py and this script are unchanged.
STAMP="$VENV/.mmseg_rass_setup"
want="$(cat "$ROOT/setup.py" "$ROOT/tools/setup_env.sh" | sha256sum | cut -c1-16)-${MMCV_FULL:-0}"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then exit 0; fi

pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }
start=$(date +%s)
echo "[setup] installing into $VENV"
if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  # shellcheck disable=SC2086
  pip_install ${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
fi
if [ "${MMCV_FULL:-0}" = "1" ]; then
  pip_install "setuptools<82" "mmengine==0.10.7"
  "$ROOT/tools/build_mmcv_full.sh" "$PY"
elif "$PY" -m pip show -q mmcv >/dev/null 2>&1; then
  pip_install "setuptools<82" "mmengine==0.10.7"  # keep a full mmcv built earlier
else
  pip_install "setuptools<82" "mmengine==0.10.7" "mmcv-lite==2.1.0"
fi
pip_install "mmsegmentation==1.2.2" "mmdet==3.3.0" "ftfy" "regex" pytest  # mmdet: Mask2Former head
# pyiqa (the Real-ISR metrics) without its declared dependencies, which would add bitsandbytes,
# tensorboard, datasets, pandas, numba, a second OpenCV (opencv-python-headless) and dev tools;
# the metrics used need only timm, einops and openai-clip (the `iqa` extra)
pip_install --no-deps "pyiqa==0.1.16"
pip_install --no-build-isolation -e "$ROOT[benchmark,iqa]"  # benchmark: frost textures, reference
echo "$want" > "$STAMP"
echo "[setup] done in $(( $(date +%s) - start )) s"
