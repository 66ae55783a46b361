# RASS on ADE20K-LQ (the paper's setting, UPerHead instead of Mask2Former): 512x512 crops,
# 8 GPUs x 2 images, 160k iterations.
#   python tools/train.py configs/rass/rass_ade20k_lq.py
_base_ = [
    './_base_/rass_upernet.py',
    '../_base_/datasets/ade20k_lq.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (512, 512)
tag_cache = 'data/ade20k_ram_tags.json'
model = dict(
    # test: pad to a multiple of 8, as Detectron2's ImageList with the authors' SIZE_DIVISIBILITY
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size_divisor=8)),
    backbone=dict(
        # the authors' prompts: RAM tags of the clean training image and of the LQ test image,
        # from a cache made by tools/make_prompt_tags.py --tagger-name ram (docs/rass.md)
        prompt=dict(_delete_=True, type='tags', cache=tag_cache, tagger='ram', degradation=None),
        test_prompt=dict(type='tags', cache=tag_cache, tagger='ram',
                         degradation={{_base_.degradation}}),
        # evaluation as the authors' code: square windows of the shorter side, features
        # averaged in the backbone, the head run once on the averaged maps
        slide_inference=True),
    decode_head=dict(num_classes=150),
    test_cfg=dict(mode='whole'))
train_dataloader = dict(batch_size=2)  # x 8 GPUs = 16, the paper's batch
# The authors' test resize (Detectron2 ResizeShortestEdge(512, max 2048), PIL bilinear).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True, backend='pillow'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
