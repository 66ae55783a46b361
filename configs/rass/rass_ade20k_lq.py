# RASS on ADE20K-LQ (the paper's setting, UPerHead instead of Mask2Former): 512x512 crops,
# 8 GPUs x 2 images, 160k iterations.
#   python tools/train.py configs/rass/rass_ade20k_lq.py
_base_ = [
    './_base_/rass_upernet.py',
    '../_base_/datasets/ade20k_lq.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    # the authors' per-image RAM/DAPE tags: prompt=dict(type='tags', cache=...), see docs/rass.md
    backbone=dict(prompt='empty'),
    decode_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))
train_dataloader = dict(batch_size=2)  # x 8 GPUs = 16, the paper's batch
