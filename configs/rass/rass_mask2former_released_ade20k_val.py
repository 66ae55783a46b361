# Evaluate RASS + Mask2Former on the authors' released degraded ADE20K-val (Real-ESRGAN
# degradations applied once, offline), read as it is: no synthetic degradation here.
# Their layout is Detectron2's ADE20K: put the download so that
#   data/rass_ade20k_lq_val/ADEChallengeData2016/images/validation/*.jpg          (degraded)
#   data/rass_ade20k_lq_val/ADEChallengeData2016/annotations_detectron2/validation/*.png
# (labels 0..149, 255 = ignore, as written by Mask2Former's prepare_ade20k_sem_seg.py). With
# ADE20K's original annotations/ (0 = ignore, 1..150) set seg_map_path='annotations/validation'
# and reduce_zero_label=True.
#   python tools/test.py configs/rass/rass_mask2former_released_ade20k_val.py CHECKPOINT
# (a checkpoint converted with tools/convert_rass_checkpoint.py: add
#  --cfg-options model.backbone.scr_lora=None, the SCR LoRA is merged in it)
# Inference as the authors' (from the base config): test resize short side 512 (long side at
# most 2048, PIL bilinear), padding to a multiple of 8 — black here, as Detectron2 pads the uint8
# image with 0 before their backbone maps it to [-1, 1] — and square windows of the shorter
# side whose backbone features are averaged (RASSBackbone slide_inference).
# Prompt: RAM tags of each released LQ image file as it is (already degraded: degradation=None).
_base_ = ['./rass_mask2former_ade20k_lq.py']
model = dict(
    data_preprocessor=dict(pad_val=-1),
    backbone=dict(test_prompt=dict(type='tags', cache={{_base_.tag_cache}}, tagger='ram',
                                   degradation=None)))
released_root = 'data/rass_ade20k_lq_val/ADEChallengeData2016'
released_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True, backend='pillow'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(
    dataset=dict(
        _delete_=True,  # not the base's DegradedDataset: these images are degraded already
        type='RealLQDataset',
        data_root=released_root,
        img_suffix='.jpg',
        reduce_zero_label=False,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations_detectron2/validation'),
        pipeline=released_pipeline))
test_dataloader = val_dataloader
