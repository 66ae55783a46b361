# ADE20K-LQ (the RASS setting): ADE20K degraded on the fly with rass_x1, random in training and
# seeded from the file name in validation/test. tools/make_lq_set.py writes the same val set to
# disk (a "degraded ADE20K-val" with a manifest).
_base_ = ['mmseg::_base_/datasets/ade20k.py']
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
degradation = dict(type='Degrade', preset='rass_x1')
train_pipeline = [
    dict(type='LoadImage'),
    dict(**degradation),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(**degradation, deterministic=True),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
