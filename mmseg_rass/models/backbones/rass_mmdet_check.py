"""Imported first by configs that need mmdet (the Mask2Former head): one clear error without it.

mmseg's ``Mask2FormerHead`` silently degrades to a plain module when mmdet is missing and then
fails on an unrelated keyword argument; importing this module instead stops at config loading.
"""
import importlib.util

MMDET_HINT = ('this config uses mmseg\'s Mask2FormerHead, which needs mmdet (>=3.0, <3.4): '
              'tools/setup_env.sh installs mmdet==3.3.0 (or `pip install mmdet==3.3.0`). On '
              'CUDA it also needs mmcv with compiled ops (MultiScaleDeformableAttention): '
              '`MMCV_FULL=1 bash tools/setup_env.sh`; on the CPU mmcv\'s PyTorch version runs')

if importlib.util.find_spec('mmdet') is None:
    raise ImportError(f'mmdet is not installed: {MMDET_HINT}')
