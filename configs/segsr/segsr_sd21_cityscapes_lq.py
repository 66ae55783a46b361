# SegSR on Cityscapes-LQ: SD2.1-base SRDM + MiT-B2 SegDM + DMB, Cityscapes degraded on the fly
# (rass_x1, HQ kept as the restoration target), 512x512 crops, 8 GPUs x 2 images, 80k iterations.
#   bash tools/dist_train.sh configs/segsr/segsr_sd21_cityscapes_lq.py 8
#   python tools/test.py configs/segsr/segsr_sd21_cityscapes_lq.py CHECKPOINT   # mIoU + PSNR/SSIM
_base_ = [
    './_base_/segsr_sd21.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size))
# Degrade after the geometric transforms: they move `img` and the masks but not `hq_img`.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Degrade', preset='rass_x1', keep_hq=True),
    dict(type='PackRestorationInputs'),
]
# Restoration and segmentation at 512x1024 (the VAE at 1024x2048 needs far more memory); the
# label map is loaded after the resize, so mIoU is measured at the full 1024x2048 (predictions
# upsampled), PSNR/SSIM at 512x1024. The LQ image is seeded from the file name.
test_pipeline = [  # clean: the inference pipeline (DegradedDataset degrades for evaluation)
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackRestorationInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type='DegradedDataset', dataset_type='CityscapesDataset', insert_after='Resize',
    degradation=dict(type='Degrade', preset='rass_x1', keep_hq=True), pipeline=test_pipeline))
test_dataloader = val_dataloader
# One tools/test.py run: mIoU of SegDM's map and PSNR/SSIM of SRDM's image (LPIPS too with
# `lpips_path`, a local lpips.LPIPS state dict).
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']), dict(type='RestorationMetric')]
test_evaluator = val_evaluator
visualizer = dict(type='RestorationVisualizer')  # --show-dir: LQ | restored | HQ
