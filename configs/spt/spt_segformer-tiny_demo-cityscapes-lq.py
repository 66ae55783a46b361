# SPT on the tiny demo SegFormer: the pretrained segmentor is frozen, SPT units are the only
# trainable parameters. Priors: `python tools/extract_sam_priors.py THIS_CONFIG --split train
# --stand-in --out data/demo_cityscapes/sam_priors/rass_x1_stand_in` (and --split val); the
# frozen segmentor: train segformer-tiny_demo-cityscapes-lq.py, then pass
# `--cfg-options load_from=work_dirs/segformer-tiny_demo-cityscapes-lq/iter_200.pth`.
_base_ = ['./segformer-tiny_demo-cityscapes-lq.py']
sam_prior_dir = 'data/demo_cityscapes/sam_priors/rass_x1_stand_in'
degrade = dict(type='Degrade', preset='rass_x1')
crop_size = (128, 256)
train_pipeline = [
    dict(type='LoadImage'),
    degrade,
    dict(type='LoadSAMPriors', prior_dir=sam_prior_dir),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputsWithSAMPriors'),
]
test_pipeline = [
    dict(type='LoadImage'),
    dict(degrade, deterministic=True),
    dict(type='LoadSAMPriors', prior_dir=sam_prior_dir),
    dict(type='Resize', scale=(512, 256), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputsWithSAMPriors'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(
    type='SAMPriorEncoderDecoder',
    trainable_modules=['neck'],
    neck=dict(type='SPTNeck', in_channels=[16, 32, 80, 128], hidden_channels=16, mask_drop=0.5))
load_from = None
