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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# Validation/test on the LQ version of the val split (DegradedDataset inserts the same Degrade,
# seeded from each file name, right after loading); mmseg's test_pipeline (inherited) stays clean:
# it is the inference pipeline for real low-quality photos.
val_dataloader = dict(dataset=dict(
    type='DegradedDataset', dataset_type='CityscapesDataset', degradation=degradation))
test_dataloader = val_dataloader
