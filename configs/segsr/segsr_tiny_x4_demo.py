# SegSR x4 super-resolution demo on CPU (the Real-ISR setting in miniature): the HQ crop (128x256)
# is degraded with the Real-ESRGAN x4 pipeline to a 32x64 LQ input; SegSR upsamples it bicubically
# to 128x256 before the VAE and the backbone, restores it with the SRDM and segments it with
# SegDM. Validation: the 8 demo val images (256x512) degraded deterministically to 64x128.
# tools/test.py reports mIoU, Y-PSNR/SSIM (crop_border 4, basicsr's convention) of SegSR and the
# same for the bicubic x4 upsampling of the LQ images (`bicubic_PSNR`, `bicubic_SSIM`).
#   python tools/make_demo_data.py --out data/demo_cityscapes
#   python tools/train.py configs/segsr/segsr_tiny_x4_demo.py
#   python tools/test.py configs/segsr/segsr_tiny_x4_demo.py work_dirs/segsr_tiny_x4_demo/iter_400.pth
#   python tools/upscale.py configs/segsr/segsr_tiny_x4_demo.py \
#       work_dirs/segsr_tiny_x4_demo/iter_400.pth tests/fixtures/real_lq --out-dir work_dirs/sr
_base_ = ['./segsr_tiny_demo.py']
scale = 4
lq_crop = (32, 64)  # HQ crop (128, 256) / scale

# The Stable Diffusion the SRDM starts from. None: the tiny random SD (arch='tiny', its VAE trained
# as an autoencoder too). Set it to the project's pretrained tiny SD folder (diffusers layout, from
# tools/pretrain_tiny_sd.py) to start from pretrained weights (its VAE then stays frozen):
tiny_sd = None

model = dict(
    scale=scale,
    data_preprocessor=dict(size=lq_crop),
    srdm=dict(pretrained_model_path=tiny_sd, arch=None if tiny_sd else 'tiny',
              train_vae=tiny_sd is None))

# (LQ, HQ) pairs: crop the HQ image (and its labels), then Degrade(realesrgan_x4) makes the LQ
# input a quarter of the crop; the HQ crop is kept as the restoration target.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Degrade', preset='realesrgan_x4', keep_hq=True),
    dict(type='PackRestorationInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(degradation=dict(preset='realesrgan_x4')))
test_dataloader = val_dataloader
restoration_metric = dict(type='RestorationMetric', crop_border=scale, test_y_channel=True,
                          bicubic_baseline=True)
# More metrics: restoration_metric.update(lpips_path=..., lpips_net='alex') and
# iqa_weights_dir=<folder>, add_available=True (docs/segsr.md, "Metrics").
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']), restoration_metric]
test_evaluator = val_evaluator
