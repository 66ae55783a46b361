# RASS model: Stable Diffusion 2.1-base backbone (SCR LoRA merged, segmentation LoRA) + UPerHead,
# with the authors' solver (Detectron2 config of Ka1Guan/RASS): AdamW lr 1e-4, wd 0.05 (none on
# norms), backbone lr x0.1 including the projections, full-model grad-norm clip 0.01, poly 0.9
# without warm-up, AMP (bf16 here, fp16 there).
# The backbone takes RGB in [-1, 1]: mean = std = 127.5.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='RASSBackbone',
        # A local SD2.1-base folder in diffusers layout (huggingface-cli download
        # stabilityai/stable-diffusion-2-1-base --local-dir checkpoints/stable-diffusion-2-1-base).
        pretrained_model_path='checkpoints/stable-diffusion-2-1-base',
        # SCR LoRA exported by configs/scr/ (tools/export_scr_lora.py); None = plain SD.
        scr_lora='checkpoints/scr_lora.safetensors',
        lora_rank=4,
        # The authors condition each image on RAM tags (docs/rass.md, Prompts):
        # prompt=dict(type='tags', cache=..., tagger='ram', degradation=...) with a cache from
        # tools/make_prompt_tags.py; or 'class_names' with class_names=<dataset type>.
        prompt='empty',
        timestep=1,
        out_channels=512,
        gradient_checkpointing=False,
        dtype='bfloat16'),
    decode_head=dict(
        type='UPerHead',
        in_channels=[512, 512, 512, 512],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# The authors multiply the lr of every module under "backbone" by 0.1 (LoRA, conv_in and the
# projections) and clip the gradient norm of the whole model at 0.01.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='RASSOptimWrapperConstructor',  # no warnings for the frozen weights
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}, norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.01, norm_type=2))
max_iters = 160000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Checkpoints hold only the trainable part (see docs/rass.md).
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [dict(type='RASSPromptHook')]  # per-image prompts (tags, gt) need it
