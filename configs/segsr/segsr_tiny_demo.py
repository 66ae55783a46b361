# SegSR demo on CPU: SRDM on a tiny random Stable Diffusion (SD2.1-base block structure, fully
# fine-tuned: a random UNet has no prior to keep), SegDM on a tiny MiT, DMB between them, trained
# on the generated demo data degraded online (rass_x1, HQ kept as the restoration target).
# tools/test.py reports mIoU (IoUMetric) and PSNR/SSIM (RestorationMetric) in one run.
#   python tools/make_demo_data.py --out data/demo_cityscapes
#   python tools/train.py configs/segsr/segsr_tiny_demo.py
#   python tools/test.py configs/segsr/segsr_tiny_demo.py work_dirs/segsr_tiny_demo/iter_400.pth
_base_ = [
    './_base_/segsr_tiny.py',
    '../_base_/datasets/demo_cityscapes.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (128, 256)
model = {{_base_.segsr_model}}

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
# test_pipeline stays clean (inference on real low-quality photos: no clean image exists);
# evaluation runs on the LQ val split (DegradedDataset: Degrade after loading, seeded from the
# file name, identical on every run and machine; keep_hq: the clean image is the PSNR target).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackRestorationInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type='DegradedDataset', dataset_type='DemoCityscapesDataset',
    degradation=dict(type='Degrade', preset='rass_x1', keep_hq=True), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']), dict(type='RestorationMetric')]
test_evaluator = val_evaluator

max_iters = 400
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook', interval=1))
visualizer = dict(type='RestorationVisualizer')
randomness = dict(seed=0)
