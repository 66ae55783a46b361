# Evaluate a RASS + UPerHead model trained on ADE20K-LQ (rass_ade20k_lq.py) on RealLQ in the
# authors' release layout (Detectron2 ADE20K layout, labels 0..149 + 255, see
# rass_mask2former_released_real_lq.py for the Mask2Former model):
#   data/RealLQ/ADEChallengeData2016/images/validation/*.jpg
#   data/RealLQ/ADEChallengeData2016/annotations_detectron2/validation/*.png
#   python tools/test.py configs/rass/rass_real_lq_test.py work_dirs/rass_ade20k_lq/iter_160000.pth
# Prompt: RAM tags of each RealLQ image file as it is (real LQ photos: degradation=None).
_base_ = ['./rass_ade20k_lq.py']
model = dict(backbone=dict(test_prompt=dict(type='tags', cache={{_base_.tag_cache}},
                                            tagger='ram', degradation=None)))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True, backend='pillow'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(
    dataset=dict(
        _delete_=True,  # not the base's DegradedDataset: these images are degraded already
        type='RealLQDataset',
        data_root='data/RealLQ/ADEChallengeData2016',
        img_suffix='.jpg',
        reduce_zero_label=False,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations_detectron2/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
