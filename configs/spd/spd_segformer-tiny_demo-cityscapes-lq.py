# SPD + SGR distillation on the tiny demo SegFormer (CPU). The student is a plain
# EncoderDecoder at test time (no priors in the test pipeline); SAMDistillHook trains an SPF
# teacher on the student's features during training only. Priors (training split only):
#   python tools/extract_sam_priors.py THIS_CONFIG --split train --stand-in \
#       --out data/demo_cityscapes/sam_priors/rass_x1_stand_in
_base_ = ['../spt/segformer-tiny_demo-cityscapes-lq.py']
sam_prior_dir = 'data/demo_cityscapes/sam_priors/rass_x1_stand_in'
crop_size = (128, 256)
norm_cfg = dict(type='BN', requires_grad=True)
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='Degrade', preset='rass_x1'),
    dict(type='LoadSAMPriors', prior_dir=sam_prior_dir),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputsWithSAMPriors'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(type='SAMDistillEncoderDecoder')
in_channels = [16, 32, 80, 128]
custom_hooks = [
    dict(
        type='SAMDistillHook',
        teacher=dict(
            type='SAMDistillTeacher',
            neck=dict(type='SPFNeck', in_channels=in_channels, mask_drop=0.5),
            decode_head=dict(
                type='SegformerHead', in_channels=in_channels, in_index=[0, 1, 2, 3],
                channels=64, dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg,
                align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
            spd_loss=dict(type='SPDLoss', loss_weight=0.05),
            # Demo only: random VGG16 weights (nothing to download). Real runs set
            # vgg_weights='checkpoints/vgg16-397923af.pth' as in spd_segformer-b0_cityscapes-lq.py.
            sgr_loss=dict(type='SGRLoss', loss_weight=200., random_init_vgg=True,
                          layer_ids=(3, 8))),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))),
]
