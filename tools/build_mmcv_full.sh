#!/usr/bin/env bash
# Build and install full mmcv 2.1.0 (compiled ops) against the torch installed in a venv.
#   tools/build_mmcv_full.sh PYTHON
# CUDA ops are compiled when nvcc is found and torch sees a GPU or TORCH_CUDA_ARCH_LIST names the
# target architectures (e.g. "8.0;9.0" on a build machine without GPU); otherwise CPU ops only.
# torch >= 2.10 needs C++20, so the
# -std=c++14/17 flags of mmcv's setup.py are raised to -std=c++20. mmcv's setup.py builds with
# setuptools<70, while torch 2.14 requires setuptools>=77.0.3: setuptools is swapped for the
# build only and "setuptools<82" is put back afterwards (also on failure). The wheel is cached in
# ${MMCV_WHEEL_CACHE:-~/.cache/mmseg_rass/wheels}, keyed by torch version and CUDA, and reused.
set -euo pipefail
PY=${1:?usage: build_mmcv_full.sh PYTHON}
CACHE=${MMCV_WHEEL_CACHE:-$HOME/.cache/mmseg_rass/wheels}
TORCH=$("$PY" -c "import torch; print(torch.__version__.replace('+', '_'))")
CUDA=none
if command -v nvcc >/dev/null 2>&1 && { [ -n "${TORCH_CUDA_ARCH_LIST:-}" ] ||
    "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; }; then
  CUDA=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
  export FORCE_CUDA=1
fi
DEST="$CACHE/torch-$TORCH-cuda-$CUDA"
mkdir -p "$DEST"
if ! ls "$DEST"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  WORK=$(mktemp -d)
  trap '"$PY" -m pip install -q --upgrade "setuptools<82"; rm -rf "$WORK"' EXIT
  "$PY" -m pip install -q "setuptools<70" wheel ninja  # pip notes torch's setuptools pin: expected
  "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$WORK" "mmcv==2.1.0"
  tar -xzf "$WORK"/mmcv-2.1.0.tar.gz -C "$WORK"
  sed -i -E 's/-std=c\+\+(14|17)/-std=c++20/g' "$WORK"/mmcv-2.1.0/setup.py
  echo "[mmcv] building mmcv 2.1.0 with ops (torch $TORCH, CUDA $CUDA); about 13 min on 2 cores"
  (cd "$WORK"/mmcv-2.1.0 && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" .)
fi
"$PY" -m pip uninstall -q -y mmcv-lite 2>/dev/null || true
"$PY" -m pip install -q --no-deps "$DEST"/mmcv-2.1.0-*.whl
"$PY" -c "from mmcv.ops import nms; import torch; print('[mmcv] compiled ops OK:', nms(torch.tensor([[0., 0, 1, 1]]), torch.tensor([1.]), 0.5)[1].tolist())"
