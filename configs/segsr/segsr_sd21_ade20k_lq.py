# SegSR on ADE20K-LQ (150 classes): SD2.1-base SRDM + MiT-B2 SegDM + DMB, ADE20K degraded on the
# fly (rass_x1, HQ kept), 512x512 crops, 8 GPUs x 2 images, 160k iterations.
#   bash tools/dist_train.sh configs/segsr/segsr_sd21_ade20k_lq.py 8
#   python tools/test.py configs/segsr/segsr_sd21_ade20k_lq.py CHECKPOINT   # mIoU + PSNR/SSIM
_base_ = [
    './_base_/segsr_sd21.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (512, 512)
num_classes = 150
max_iters = 160000
model = dict(data_preprocessor=dict(size=crop_size), segdm=dict(num_classes=num_classes))
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Degrade', preset='rass_x1', keep_hq=True),
    dict(type='PackRestorationInputs'),
]
# The label map is loaded after the resize: mIoU at the original size, PSNR/SSIM at the resized one.
test_pipeline = [  # clean: the inference pipeline (DegradedDataset degrades for evaluation)
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackRestorationInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type='DegradedDataset', dataset_type='ADE20KDataset', insert_after='Resize',
    degradation=dict(type='Degrade', preset='rass_x1', keep_hq=True), pipeline=test_pipeline))
test_dataloader = val_dataloader
# One tools/test.py run: mIoU of SegDM's map and PSNR/SSIM of SRDM's image (LPIPS too with
# `lpips_path`, a local lpips.LPIPS state dict).
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']), dict(type='RestorationMetric')]
test_evaluator = val_evaluator
visualizer = dict(type='RestorationVisualizer')  # --show-dir: LQ | restored | HQ
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=16000)
default_hooks = dict(checkpoint=dict(interval=16000))
