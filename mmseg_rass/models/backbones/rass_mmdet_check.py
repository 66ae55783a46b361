"""Imported first by configs that need mmdet (the Mask2Former head): one clear error without it.

mmseg's ``Mask2FormerHead`` silently degrades to a plain module when mmdet is missing and then
fails on an unrelated keyword argument; importing this module instead stops at config loading.
"""
import importlib.util

MMDET_HINT = ('this config uses mmseg\'s Mask2FormerHead, which needs mmdet (>=3.0, <3.4) and '
              'mmcv with compiled ops (MultiScaleDeformableAttention): `pip install '
              '"mmdet>=3.0,<3.4"` and `MMCV_FULL=1 bash tools/setup_env.sh`; without them use '
              'configs/rass/rass_ade20k_lq.py (UPerHead)')

if importlib.util.find_spec('mmdet') is None:
    raise ImportError(f'mmdet is not installed: {MMDET_HINT}')
