# The RASS authors' released test sets, read as they are (already low-quality: no synthetic
# degradation): their degraded ADE20K-val (the default data_root) and RealLQ (set data_root to
# data/RealLQ/ADEChallengeData2016). Both come in Detectron2's ADE20K layout:
#   <data_root>/images/validation/*.jpg
#   <data_root>/annotations_detectron2/validation/*.png   (labels 0..149, 255 = ignore)
# Test resolution as the paper's ADE20K protocol: shorter side 512 (at most 2048).
# tools/lq_protocol.py evaluates on it as --eval-sets ade20k-lq-released / real-lq.
_base_ = ['mmseg::_base_/datasets/ade20k.py']
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
data_root = 'data/rass_ade20k_lq_val/ADEChallengeData2016'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(
    dataset=dict(
        type='RealLQDataset',
        data_root=data_root,
        img_suffix='.jpg',
        reduce_zero_label=False,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations_detectron2/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
