# SPD + SGR distillation for SegFormer-B0 on Cityscapes-LQ (online RASS x1 degradation).
# Training: the student (plain SegFormer-B0) learns the task, the SPF teacher (SAM priors fused
# into the student's features, own SegFormer head) learns the task, and the student is pulled
# towards the teacher (SPD smooth-L1, λ1) and its SAM-mask relations (SGR on frozen VGG16, λ2).
# Test/inference: the student alone, no SAM, no priors (test pipeline below has none).
#   1. priors for the train split only:
#      python tools/extract_sam_priors.py configs/spd/spd_segformer-b0_cityscapes-lq.py \
#          --split train --sam-checkpoint checkpoints/sam_vit_b_01ec64.pth --model-type vit_b \
#          --out data/cityscapes/sam_priors/rass_x1_vit_b [--shard i/n --device cuda:i]
#   2. put torchvision's VGG16 weights at checkpoints/vgg16-397923af.pth
#   3. python tools/train.py configs/spd/spd_segformer-b0_cityscapes-lq.py
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
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(type='SAMDistillEncoderDecoder')
in_channels = [32, 64, 160, 256]
custom_hooks = [
    dict(
        type='SAMDistillHook',
        teacher=dict(
            type='SAMDistillTeacher',
            neck=dict(type='SPFNeck', in_channels=in_channels, mask_drop=0.5),
            decode_head=dict(
                type='SegformerHead', in_channels=in_channels, in_index=[0, 1, 2, 3],
                channels=256, dropout_ratio=0.1, num_classes=19,
                norm_cfg=dict(type='SyncBN', requires_grad=True), align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
            spd_loss=dict(type='SPDLoss', loss_weight=0.05),  # λ1
            sgr_loss=dict(type='SGRLoss', loss_weight=200.,  # λ2
                          vgg_weights='checkpoints/vgg16-397923af.pth')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=6e-4, betas=(0.9, 0.999),
                                          weight_decay=0.01)),
        save_teacher=True),
]
