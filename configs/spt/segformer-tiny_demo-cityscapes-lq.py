# A tiny SegFormer (MiT, 16-dim) trained on the degraded demo data on CPU: the pretrained,
# later frozen segmentor of the tiny SPT demo and the plain baseline of the SPD demo.
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/demo_cityscapes_lq.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (128, 256)
norm_cfg = dict(type='BN', requires_grad=True)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(embed_dims=16, num_layers=[1, 1, 1, 1], num_heads=[1, 2, 5, 8],
                  drop_path_rate=0.),
    decode_head=dict(in_channels=[16, 32, 80, 128], channels=64, norm_cfg=norm_cfg))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=200,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=1))
randomness = dict(seed=0)
