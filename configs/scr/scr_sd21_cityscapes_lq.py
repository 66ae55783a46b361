# SCR on Cityscapes-LQ: one-step SD2.1-base restorer (OSEDiff recipe: t=999, UNet LoRA rank 4
# alpha 8 + conv_in + VAE-encoder LoRA, MSE + 2·LPIPS) + L_SCL, trained on HQ/LQ pairs degraded
# on the fly (rass_x1). Training prompts name the GT classes (L_SCL needs them); validation
# prompts name all 19 classes (no labels used).
#   python tools/train.py configs/scr/scr_sd21_cityscapes_lq.py
#   python tools/export_scr_lora.py work_dirs/scr_sd21_cityscapes_lq/iter_20000.pth scr_lora.safetensors
# Needs a local SD2.1-base folder in diffusers layout (huggingface-cli download
# stabilityai/stable-diffusion-2-1-base --local-dir checkpoints/stable-diffusion-2-1-base) and
# torchvision's VGG16 weights for LPIPS (checkpoints/vgg16-397923af.pth, see docs/scr.md).
_base_ = ['mmseg::_base_/datasets/cityscapes.py', 'mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
crop_size = (512, 512)
max_iters = 20000  # [choice] the RASS paper does not give SCR's schedule

model = dict(
    type='SCRRestorer',
    pretrained_model_path='checkpoints/stable-diffusion-2-1-base',
    timestep=999,  # OSEDiff
    lora_rank=4,
    vae_lora_rank=4,
    class_names='CityscapesDataset',
    prompt='gt',
    test_prompt='class_names',
    pixel_loss='mse',
    pixel_weight=1.0,
    lpips_weight=2.0,
    lpips_path='checkpoints/vgg16-397923af.pth',
    # OSEDiff's third term, opt-in: vsd=dict() (weight 1, CFG 7.5, see docs/scr.md)
    vsd=None,
    scl_loss=dict(type='SCLLoss', token_weight=0.5, pixel_weight=0.025, mask_stride=8),
    attn_strides=(1, 2, 4, 8),  # 64², 32², 16², 8² maps at 512²
    gradient_checkpointing=True,
    data_preprocessor=dict(type='SCRDataPreprocessor', size_divisor=8))

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
# Validation at 512x1024 (the SD VAE at 1024x2048 needs far more memory); the LQ image is seeded
# from the file name, so the set is identical on every run.
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(1024, 512), keep_ratio=True),
    dict(type='Degrade', preset='rass_x1', deterministic=True, keep_hq=True),
    dict(type='PackRestorationInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='RestorationMetric', _delete_=True)
test_evaluator = val_evaluator

# OSEDiff's optimiser: AdamW lr 5e-5, wd 1e-2, eps 1e-8, grad-norm clip 1.0, constant lr
# (its "constant" scheduler ignores the warm-up argument); AMP (bf16 here, fp16 there).
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3),
    visualization=dict(type='SegVisualizationHook', interval=1))
custom_hooks = [dict(type='SCRDatasetMetaHook')]
visualizer = dict(type='RestorationVisualizer')
