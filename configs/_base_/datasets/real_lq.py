# RealLQ: a folder of real low-quality images with ADE20K-style labels (150 classes), evaluated
# as they are (no synthetic degradation). Layout under data_root:
#   images/validation/*.jpg   annotations/validation/*.png   (0 = ignore, 1..150 = classes)
_base_ = ['mmseg::_base_/datasets/ade20k.py']
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
dataset_type = 'RealLQDataset'
data_root = 'data/real_lq'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
