# RASS with the paper's head: SD2.1-base backbone (SCR LoRA merged) + Mask2Former on ADE20K-LQ,
# 512x512 crops, 8 GPUs x 2 images, 160k iterations (mmseg's Mask2Former recipe, backbone lr x0.1).
# NEEDS mmdet (>=3.0, <3.4) and mmcv with compiled ops (MSDeformAttn); without mmdet, loading this
# config stops with an ImportError saying so. Otherwise use rass_ade20k_lq.py (UPerHead).
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(
    imports=['mmseg_rass.models.backbones.rass_mmdet_check', 'mmseg_rass', 'mmdet.models'],
    allow_failed_imports=False)
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(
        _delete_=True,
        type='RASSBackbone',
        pretrained_model_path='checkpoints/stable-diffusion-2-1-base',
        scr_lora='checkpoints/scr_lora.safetensors',
        out_channels=512,
        dtype='bfloat16'),
    decode_head=dict(in_channels=[512, 512, 512, 512]))
optim_wrapper = dict(constructor='RASSOptimWrapperConstructor')

# ADE20K-LQ (as configs/_base_/datasets/ade20k_lq.py): degraded training pipeline, evaluation on
# the deterministic LQ val split; the inherited test_pipeline stays clean (inference).
degradation = dict(type='Degrade', preset='rass_x1')
train_pipeline = [
    dict(type='LoadImage'),
    dict(**degradation),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type='DegradedDataset', dataset_type='ADE20KDataset', degradation=degradation))
test_dataloader = val_dataloader
