# SPT on SegFormer-B0 for Cityscapes-LQ (online RASS x1 degradation): the pretrained
# segmentor is frozen and the SPT units are the only trainable parameters.
#   1. priors (LQ images, deterministic degradation), e.g. 4 GPUs:
#      python tools/extract_sam_priors.py configs/spt/spt_segformer-b0_cityscapes-lq.py \
#          --split train --sam-checkpoint checkpoints/sam_vit_b_01ec64.pth --model-type vit_b \
#          --out data/cityscapes/sam_priors/rass_x1_vit_b --shard 0/4 --device cuda:0  # ... 3/4
#      (and --split val)
#   2. python tools/train.py configs/spt/spt_segformer-b0_cityscapes-lq.py
# load_from: SegFormer-B0 Cityscapes weights (mmseg model zoo, 1024x1024 160k); better a
# SegFormer-B0 fine-tuned on Cityscapes-LQ (--cfg-options load_from=...).
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py']
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
sam_prior_dir = 'data/cityscapes/sam_priors/rass_x1_vit_b'
crop_size = (1024, 1024)
degrade = dict(type='Degrade', preset='rass_x1')
# The pipelines of ../_base_/datasets/cityscapes_lq.py (SegFormer's 1024x1024 crop) + SAM priors.
train_pipeline = [
    dict(type='LoadImage'),
    degrade,
    dict(type='LoadSAMPriors', prior_dir=sam_prior_dir),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputsWithSAMPriors'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(degrade, deterministic=True),
    dict(type='LoadSAMPriors', prior_dir=sam_prior_dir),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputsWithSAMPriors'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(
    type='SAMPriorEncoderDecoder',
    trainable_modules=['neck'],
    backbone=dict(init_cfg=None),
    neck=dict(type='SPTNeck', in_channels=[32, 64, 160, 256], hidden_channels=32,
              mask_drop=0.5))
load_from = ('checkpoints/segformer_mit-b0_8x1_1024x1024_160k_cityscapes_'
             '20211208_101857-e7f88502.pth')
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01))
max_iters = 40000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1000, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000))
