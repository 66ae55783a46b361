# SegSR for real-world x4 super-resolution (the paper's setting) with Stable Diffusion 2.1-base:
# SRDM = SD2.1-base UNet (LoRA rank 16 + widened conv_in) + frozen VAE at the HQ size (the LQ
# image upsampled bicubically x4 first), SegDM on a MiT-B2 run on the same upsampled LQ image,
# Dual-Modality Bridge. The Real-ISR recipe (docs/segsr.md compares it with SeeSR's and
# OSEDiff's): HQ images of LSDIR + the first 10k of FFHQ, random 512x512 crops, Real-ESRGAN x4
# degradation online -> 128x128 LQ; AdamW lr 5e-5, batch 16 (8 GPUs x 2), bf16, 100k iterations;
# 20 DDIM steps from the noised LQ latent (SeeSR's start point).
# Segmentation labels: pseudo-labels of the HQ images by any mmseg model (the paper's prior is a
# SegFormer; an ADE20K model gives its 150 classes), cached by content:
#   python tools/make_pseudo_labels.py mmseg::segformer/segformer_mit-b5_8xb2-160k_ade20k-640x640.py \
#       checkpoints/segformer_mit-b5_ade20k.pth data/lsdir_ffhq10k/hq \
#       --out-dir data/lsdir_ffhq10k/pseudo_labels
#   bash tools/dist_train.sh configs/segsr/segsr_sd21_x4_realisr.py 8
# Test on the paper's benchmarks: segsr_sd21_x4_{div2k_val,realsr,drealsr,reallq250}.py.
_base_ = [
    './_base_/segsr_sd21.py',
    '../_base_/datasets/real_isr_x4.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
scale = 4
hq_crop = (512, 512)
lq_crop = (128, 128)
num_classes = 150  # the labelling model's classes (ADE20K); must match label_meta
label_root = 'data/lsdir_ffhq10k'
model = dict(
    scale=scale,
    data_preprocessor=dict(size=lq_crop),
    srdm=dict(init_latent='lq'),
    segdm=dict(num_classes=num_classes))
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=hq_crop),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Degrade', preset='realesrgan_x4', keep_hq=True),  # 512 HQ -> 128 LQ
    dict(type='PackRestorationInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='RealISRDataset',
        data_root=label_root,
        data_prefix=dict(img_path='hq', seg_map_path='pseudo_labels'),
        label_meta=label_root + '/pseudo_labels/meta.json',
        pipeline=train_pipeline))
val_dataloader = {{_base_.div2k_val}}
test_dataloader = val_dataloader
# PSNR/SSIM on the Y channel, 4-pixel border cropped (basicsr's convention; OSEDiff's table uses
# crop_border=0); the pyiqa metrics from local weights (mmseg_rass/evaluation/iqa.py).
val_evaluator = dict(
    type='RestorationMetric',
    metrics=['PSNR', 'SSIM', 'LPIPS', 'DISTS', 'FID', 'NIQE', 'MUSIQ', 'MANIQA', 'CLIPIQA'],
    test_y_channel=True,
    crop_border=scale,
    lpips_path='checkpoints/iqa/checkpoints/alexnet-owt-7be5be79.pth',
    lpips_net='alex',
    iqa_weights_dir='checkpoints/iqa')
test_evaluator = val_evaluator
visualizer = dict(type='RestorationVisualizer')  # --show-dir: LQ | SR | HQ
optim_wrapper = dict(optimizer=dict(lr=5e-5))
max_iters = 100000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=1000, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
default_hooks = dict(checkpoint=dict(interval=10000))
