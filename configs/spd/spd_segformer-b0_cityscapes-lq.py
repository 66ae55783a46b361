# SPD + SGR distillation for SegFormer-B0 on Cityscapes-LQ (online RASS x1 degradation), light
# teacher variant (SPF neck on the student's features; the paper's cascade:
# spd-cascade_segformer-b0_cityscapes-lq.py). Training: the student (plain SegFormer-B0, mmseg's
# SegFormer Cityscapes recipe) learns the task, the SPF teacher (SAM priors fused into the
# student's features, own SegFormer head) learns the task, and the student is pulled towards the
# teacher (SPD smooth-L1, λ1 = 0.005) and its SAM-mask relations (SGR on frozen VGG16,
# λ2 = 200). Test/inference: the student alone, no SAM, no priors (test pipeline has none).
#   1. priors for the train split only:
#      python tools/extract_sam_priors.py configs/spd/spd_segformer-b0_cityscapes-lq.py \
#          --split train --sam-checkpoint checkpoints/sam_vit_b_01ec64.pth --model-type vit_b \
#          --out data/cityscapes/sam_priors/rass_x1_vit_b [--shard i/n --device cuda:i]
#   2. put torchvision's VGG16 weights at checkpoints/vgg16-397923af.pth
#   3. python tools/train.py configs/spd/spd_segformer-b0_cityscapes-lq.py
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/cityscapes_lq_1024x1024_sam_priors.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
# mmseg's SegFormer-B0 Cityscapes recipe (segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py)
crop_size = (1024, 1024)
checkpoint = ('https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/'
              'mit_b0_20220624-7e0fe6dd.pth')
model = dict(
    type='SAMDistillEncoderDecoder',
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(768, 768)))
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.),
                                    'norm': dict(decay_mult=0.),
                                    'head': dict(lr_mult=10.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_dataloader = dict(batch_size=1, num_workers=4)
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader
# The teacher follows the run's optimizer, clipping, accumulation and schedule (SAMDistillHook).
custom_hooks = [
    dict(
        type='SAMDistillHook',
        teacher=dict(
            type='SAMDistillTeacher',
            neck=dict(type='SPFNeck', in_channels=_base_.model.decode_head.in_channels,
                      mask_drop=0.5),
            decode_head=_base_.model.decode_head,
            spd_loss=dict(type='SPDLoss', loss_weight=0.005),  # λ1 (paper, Table 6)
            sgr_loss=dict(type='SGRLoss', loss_weight=200.,  # λ2 (paper, Table 6)
                          relation='l2', vgg_weights='checkpoints/vgg16-397923af.pth'))),
]
