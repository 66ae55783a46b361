#!/usr/bin/env bash
# The prepared GPU check (tools/gpu_check.py; docs/benchmarks.md, "GPU check").
#   bash tools/gpu_check.sh --fetch-wheels        # where PyPI is reachable: fill .whl/
#   bash tools/gpu_check.sh [gpu_check.py options: --only STEP,... --out DIR --budget S --dry-run]
#
# On a machine without a package index (a lent GPU machine: a python3 with CUDA torch, no
# network), a missing .venv is made offline from that python3 and the wheels in .whl/ (carried
# along with the repository): the interpreter's own packages (torch, numpy, OpenCV, ...) stay
# visible through a .pth file naming its site-packages (`--system-site-packages` would not show
# them when python3 is itself a venv), every wheel is installed without dependency resolution,
# then tools/setup_env.sh runs against .whl/ only and marks .venv as set up, so that
# tools/run_demo.sh reuses it. An existing .venv is used as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHEELS="$ROOT/.whl"
# What mmseg_rass needs beyond the GPU machine image's packages (its python3 holds torch,
# torchvision, numpy, scipy, scikit-image, opencv-python-headless, matplotlib, transformers,
# accelerate, huggingface-hub, safetensors, pillow, pyyaml, rich, regex, tqdm, requests, six,
# psutil, zipp, pytest), pinned as in the project's tested environment.
NEEDED="mmengine==0.10.7 mmcv-lite==2.1.0 mmsegmentation==1.2.2 mmdet==3.3.0 diffusers==0.42.1
peft==0.21.2 segment-anything==1.0 lpips==0.1.4 imagecorruptions==1.1.2 ftfy==6.3.1
wcwidth==0.9.5 addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0
prettytable==3.19.0 shapely==2.2.0 pycocotools==2.0.11 terminaltables==3.1.10
setuptools==81.0.0"

if [ "${1:-}" = --fetch-wheels ]; then
  # for the GPU machine's interpreter (CPython 3.12, x86-64 Linux); WHEEL_PYTHON to change it
  # shellcheck disable=SC2086
  "${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "${WHEEL_PYTHON:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" $NEEDED
  echo "[gpu_check] $(ls "$WHEELS"/*.whl | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1) in $WHEELS"
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  if [ ! -d "$WHEELS" ]; then
    echo "[gpu_check] no .venv and no $WHEELS: run tools/setup_env.sh (with PyPI), or" \
         "'bash tools/gpu_check.sh --fetch-wheels' where PyPI is reachable and carry .whl/" >&2
    exit 1
  fi
  HOST="${PYTHON:-python3}"
  start=$(date +%s)
  "$HOST" -m venv --without-pip .venv
  SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$HOST" -c 'import site; print("\n".join(site.getsitepackages()))' > "$SITE/host_site.pth"
  # pip itself comes from the host's site-packages (through the .pth file)
  .venv/bin/python -m pip install --quiet --no-index --no-deps --no-compile "$WHEELS"/*.whl
  PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELS" PIP_NO_DEPS=1 bash tools/setup_env.sh
  echo "[gpu_check] offline .venv over $("$HOST" -c 'import sys; print(sys.executable)') in" \
       "$(( $(date +%s) - start )) s"
fi
exec .venv/bin/python tools/gpu_check.py "$@"
