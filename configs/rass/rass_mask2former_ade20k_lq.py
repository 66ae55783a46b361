# RASS as published: SD2.1-base backbone (SCR LoRA merged, segmentation LoRA) + Mask2Former on
# ADE20K-LQ, 512x512 crops, 8 GPUs x 2 images, 160k iterations, the authors' solver (AdamW 1e-4,
# wd 0.05, backbone incl. projections lr x0.1, full-model grad-norm clip 0.01, poly 0.9, no
# warm-up). Needs mmdet (installed by tools/setup_env.sh); on CUDA also mmcv's compiled
# MultiScaleDeformableAttention (MMCV_FULL=1 bash tools/setup_env.sh) — on CPU mmcv's PyTorch
# implementation runs. The authors' released checkpoint converts to this config:
#   python tools/convert_rass_checkpoint.py rass.pth checkpoints/rass_m2f_ade20k.pth
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(
    imports=['mmseg_rass.models.backbones.rass_mmdet_check', 'mmseg_rass', 'mmdet.models'],
    allow_failed_imports=False)
crop_size = (512, 512)
degradation = dict(type='Degrade', preset='rass_x1')
# The authors' conditioning: RAM tags (the reference overwrites its DAPE tags with RAM's) of the
# clean training image and of the whole LQ test image. Here they come from a tag cache made by
# tools/make_prompt_tags.py --tagger-name ram (see docs/rass.md, Prompts); the authors tag the
# augmented 512x512 crop, this cache holds tags of the whole image file.
tag_cache = 'data/ade20k_ram_tags.json'
model = dict(
    # test: pad to a multiple of 8, as Detectron2's ImageList with the authors' SIZE_DIVISIBILITY
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
                           test_cfg=dict(size_divisor=8)),
    backbone=dict(
        _delete_=True,
        type='RASSBackbone',
        pretrained_model_path='checkpoints/stable-diffusion-2-1-base',
        scr_lora='checkpoints/scr_lora.safetensors',
        prompt=dict(type='tags', cache=tag_cache, tagger='ram', degradation=None),
        test_prompt=dict(type='tags', cache=tag_cache, tagger='ram', degradation=degradation),
        out_channels=512,
        dtype='bfloat16',
        # evaluation as the authors' code: square windows of the shorter side, features averaged
        slide_inference=True),
    decode_head=dict(in_channels=[512, 512, 512, 512]))
# mmseg's Mask2Former solver is the authors' (Detectron2 config + train_net.py): the 'backbone'
# key (x0.1) covers the projections too; norms and query/level embeddings get no weight decay.
optim_wrapper = dict(constructor='RASSOptimWrapperConstructor')
custom_hooks = [dict(type='RASSPromptHook')]  # per-image prompts (tags, gt) need it

# The authors degrade the augmented crop on the GPU (after resize, crop, flip and colour
# jitter); the same order here. Validation: ADE20K-val degraded deterministically (file-name
# seed) by DegradedDataset; the inherited test_pipeline stays clean (inference on real photos).
# Their released degraded val set: rass_mask2former_released_ade20k_val.py.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomChoiceResize', scales=[int(512 * x * 0.1) for x in range(5, 21)],
         resize_type='ResizeShortestEdge', max_size=2048),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),  # authors: no class cap
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(**degradation),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# The authors' test resize (Detectron2 ResizeShortestEdge(512, max 2048), PIL bilinear).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True, backend='pillow'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(
    type='DegradedDataset', dataset_type='ADE20KDataset', degradation=degradation,
    pipeline=test_pipeline))
test_dataloader = val_dataloader
