# The same baseline trained and evaluated on the degraded demo data (Degrade rass_x1).
_base_ = [
    '../_base_/models/fpn_r18.py', '../_base_/datasets/demo_cityscapes_lq.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/demo_300it.py'
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
