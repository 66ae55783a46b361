# The demo dataset degraded on the fly: Degrade(rass_x1) random in training; validation and test
# on the LQ version of the val split (DegradedDataset: the same Degrade, seeded from each file
# name, right after loading: identical on every run and machine). test_pipeline (inherited) stays
# clean: it is the inference pipeline for real low-quality photos.
_base_ = ['./demo_cityscapes.py']
degradation = dict(type='Degrade', preset='rass_x1')
train_pipeline = [
    dict(type='LoadImage'),
    dict(**degradation),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type='DegradedDataset', dataset_type='DemoCityscapesDataset', degradation=degradation))
test_dataloader = val_dataloader
