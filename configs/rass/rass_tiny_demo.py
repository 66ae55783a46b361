# RASS demo on CPU: a tiny random Stable Diffusion (same block structure as SD2.1-base) as the
# backbone, UPerHead, the generated demo data degraded online (rass_x1). A few minutes on CPU.
#   python tools/make_demo_data.py --out data/demo_cityscapes
#   python tools/train.py configs/rass/rass_tiny_demo.py
_base_ = [
    './_base_/rass_upernet.py',
    '../_base_/datasets/demo_cityscapes_lq.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (128, 256)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='RASSBackbone',
        arch='tiny',  # random weights, rebuilt identically from init_seed (not checkpointed)
        init_seed=0,
        prompt='class_names',
        class_names='CityscapesDataset',
        out_channels=64,
        dtype='float32'),
    decode_head=dict(
        in_channels=[64, 64, 64, 64], channels=64, num_classes=19, norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole'))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='RASSOptimWrapperConstructor',  # no warnings for the frozen weights
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        'backbone.projections': dict(lr_mult=1.0),
    }))
max_iters = 300
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
