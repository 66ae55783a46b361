# SCR restorer with tiny random Stable Diffusion parts, trained on the demo data (CPU, minutes).
# arch='tiny': the block structure of SD2.1-base (mmseg_rass.models.diffusion.ARCHS), random
# weights rebuilt identically from init_seed.
_base_ = ['../_base_/datasets/demo_cityscapes.py', 'mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (128, 256)

model = dict(
    type='SCRRestorer',
    arch='tiny',
    lora_rank=4,
    pixel_loss='mse',
    pixel_weight=1.0,
    # No VGG weights for a CPU demo: LPIPS off, a departure from OSEDiff's MSE + 2·LPIPS.
    lpips_weight=0,
    scl_loss=dict(type='SCLLoss', token_weight=0.5, pixel_weight=0.025, mask_stride=8),
    attn_strides=(1, 2, 4, 8),
    data_preprocessor=dict(type='SCRDataPreprocessor', size_divisor=8))

# Degrade after the geometric transforms: they move `img` and the masks but not `hq_img`.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Degrade', preset='rass_x1', keep_hq=True),
    dict(type='PackRestorationInputs'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Degrade', preset='rass_x1', deterministic=True, keep_hq=True),
    dict(type='LoadAnnotations'),
    dict(type='PackRestorationInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='RestorationMetric', _delete_=True)
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.0),
    clip_grad=dict(max_norm=1.0))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook', interval=1))
custom_hooks = [dict(type='SCRDatasetMetaHook')]
visualizer = dict(type='RestorationVisualizer')
randomness = dict(seed=0)
