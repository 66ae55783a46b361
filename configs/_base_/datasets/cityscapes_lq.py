# Cityscapes-LQ: Cityscapes degraded on the fly with the RASS degradation (rass_x1): random in
# training, seeded from the file name in validation/test (identical on every run and machine).
# For a fixed LQ copy on disk instead, see tools/make_lq_set.py and docs/degradation.md.
_base_ = ['mmseg::_base_/datasets/cityscapes.py']
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
degradation = dict(type='Degrade', preset='rass_x1')
train_pipeline = [
    dict(type='LoadImage'),
    dict(**degradation),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(**degradation, deterministic=True),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
