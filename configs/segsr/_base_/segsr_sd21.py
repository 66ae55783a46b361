# SegSR with Stable Diffusion 2.1-base: SRDM = SD2.1-base UNet (LoRA rank 16 + widened conv_in)
# + VAE, SegDM on a MiT-B2 (SegFormer) backbone, Dual-Modality Bridge; AdamW, poly, bf16 AMP.
# Needs local weights (nothing is downloaded):
#   huggingface-cli download stabilityai/stable-diffusion-2-1-base \
#       --local-dir checkpoints/stable-diffusion-2-1-base
#   MiT-B2 ImageNet weights in mmseg's format (mmseg's SegFormer configs name the file):
#       checkpoints/mit_b2_20220624-66e8bf70.pth
norm_cfg = dict(type='SyncBN', requires_grad=True)
num_classes = 19
model = dict(
    type='SegSR',
    data_preprocessor=dict(type='SegSRDataPreProcessor'),
    srdm=dict(
        type='SRDM',
        pretrained_model_path='checkpoints/stable-diffusion-2-1-base',
        finetune='lora',  # or 'full' (the whole UNet)
        lora_rank=16,
        prompt='',
        sampler=dict(type='DDIMScheduler', timestep_spacing='trailing'),
        init_latent='noise',
        gradient_checkpointing=True),
    backbone=dict(
        type='MixVisionTransformer',
        in_channels=3,
        embed_dims=64,
        num_stages=4,
        num_layers=[3, 4, 6, 3],
        num_heads=[1, 2, 5, 8],
        patch_sizes=[7, 3, 3, 3],
        sr_ratios=[8, 4, 2, 1],
        out_indices=(0, 1, 2, 3),
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mit_b2_20220624-66e8bf70.pth')),
    segdm=dict(
        type='SegDM',
        in_channels=[64, 128, 320, 512],
        channels=256,
        num_classes=num_classes,
        bit_scale=0.01,
        num_time_blocks=2,
        decode_head=dict(
            type='FCNHead',
            channels=256,
            num_convs=2,
            concat_input=False,
            dropout_ratio=0.1,
            norm_cfg=norm_cfg,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))),
    bridge=dict(type='DualModalityBridge', img_cond_channels=64, seg_cond_channels=4,
                mid_channels=128, norm_cfg=dict(type='GN', num_groups=32)),
    num_steps=20,
    sample_seed=0,
    sr_loss_weight=1.0,
    seg_loss_weight=1.0,
    init_pass_weight=1.0,
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=dict(max_norm=1.0))
max_iters = 80000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Checkpoints hold only the trainable part (the frozen SD weights come from the folder).
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
