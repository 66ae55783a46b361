# Evaluate a RASS model trained on ADE20K-LQ (rass_ade20k_lq.py) on RealLQ: real low-quality
# photos with ADE20K labels, no synthetic degradation.
#   python tools/test.py configs/rass/rass_real_lq_test.py work_dirs/rass_ade20k_lq/iter_160000.pth
_base_ = [
    './_base_/rass_upernet.py',
    '../_base_/datasets/real_lq.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))
