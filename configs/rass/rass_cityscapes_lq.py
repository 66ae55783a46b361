# RASS on Cityscapes-LQ (online Real-ESRGAN-style degradation, scale 1): SD2.1-base backbone with
# the SCR LoRA merged + UPerHead, 512x1024 crops, 8 GPUs x 2 images, 80k iterations.
#   python tools/train.py configs/rass/rass_cityscapes_lq.py
_base_ = [
    './_base_/rass_upernet.py',
    '../_base_/datasets/cityscapes_lq.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (512, 1024)
max_iters = 80000
model = dict(
    data_preprocessor=dict(size=crop_size),
    # the 19 class names in one prompt (fits in CLIP's 77 tokens); no labels used
    backbone=dict(prompt='class_names', class_names='CityscapesDataset'),
    decode_head=dict(num_classes=19),
    # 1024x2048 test images: slide 512x1024 windows (the backbone pads each to a multiple of 64).
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(512, 768)))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
