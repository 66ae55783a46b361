# Baseline: mmseg's Semantic FPN with a ResNet-18 trained from scratch on the clean demo data (CPU).
_base_ = [
    '../_base_/models/fpn_r18.py', '../_base_/datasets/demo_cityscapes.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/demo_300it.py'
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
