# SPT on SegFormer-B0 for Cityscapes-LQ (online RASS x1 degradation): the pretrained
# segmentor is frozen and the SPT units are the only trainable parameters; SPT needs priors for
# the evaluation split too (SAM at inference).
#   1. priors (LQ images, deterministic degradation), e.g. 4 GPUs:
#      python tools/extract_sam_priors.py configs/spt/spt_segformer-b0_cityscapes-lq.py \
#          --split train --sam-checkpoint checkpoints/sam_vit_b_01ec64.pth --model-type vit_b \
#          --out data/cityscapes/sam_priors/rass_x1_vit_b --shard 0/4 --device cuda:0  # ... 3/4
#      (and --split val)
#   2. python tools/train.py configs/spt/spt_segformer-b0_cityscapes-lq.py
# load_from: SegFormer-B0 Cityscapes weights (mmseg model zoo, 1024x1024 160k); better a
# SegFormer-B0 fine-tuned on Cityscapes-LQ (--cfg-options load_from=...).
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/cityscapes_lq_1024x1024_sam_priors.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (1024, 1024)
train_dataloader = dict(batch_size=2, num_workers=4)
val_dataloader = dict(dataset=dict(pipeline=_base_.sam_test_pipeline))
test_dataloader = val_dataloader
model = dict(
    type='SAMPriorEncoderDecoder',
    trainable_modules=['neck'],
    data_preprocessor=dict(size=crop_size),
    neck=dict(type='SPTNeck', in_channels=[32, 64, 160, 256], hidden_channels=32,
              mask_drop=0.5),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(768, 768)))
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
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
