# The tiny SegSR of the CPU demo, as `segsr_model` (used by segsr_tiny_demo.py and, as a restorer,
# by segsr_r2s_demo.py): SRDM on a tiny random Stable Diffusion (SD2.1-base block structure, fully
# fine-tuned: a random UNet has no prior to keep), SegDM on a 16-dim MiT, DMB between them.
segsr_model = dict(
    type='SegSR',
    data_preprocessor=dict(type='SegSRDataPreProcessor', size=(128, 256)),  # the demo crop
    srdm=dict(
        type='SRDM',
        arch='tiny',  # random weights, rebuilt identically from init_seed
        init_seed=0,
        finetune='full',
        # A random VAE reconstructs images at ~13 dB PSNR (the LQ input is ~25 dB), so the demo
        # also trains it as an autoencoder (loss_vae); SD's VAE stays frozen in the SD configs.
        train_vae=True,
        sampler=dict(type='DDIMScheduler', timestep_spacing='trailing')),
    backbone=dict(
        type='MixVisionTransformer',
        in_channels=3,
        embed_dims=16,
        num_stages=4,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 5, 8],
        patch_sizes=[7, 3, 3, 3],
        sr_ratios=[8, 4, 2, 1],
        out_indices=(0, 1, 2, 3),
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0),
    segdm=dict(
        type='SegDM',
        in_channels=[16, 32, 80, 128],
        channels=32,
        num_classes=19,
        bit_scale=0.01,
        decode_head=dict(
            type='FCNHead',
            channels=32,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.1,
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))),
    bridge=dict(type='DualModalityBridge', img_cond_channels=16, seg_cond_channels=4,
                mid_channels=16),
    num_steps=4,
    sample_seed=0,
    sr_loss_weight=1.0,
    seg_loss_weight=1.0,
    init_pass_weight=1.0)
