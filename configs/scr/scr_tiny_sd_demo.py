# SCR (the RASS paper's restorer, OSEDiff recipe) from the project's pretrained tiny Stable
# Diffusion (tools/pretrain_tiny_sd.py -> data/tiny_sd), trained on the demo data: the first
# stage of the README's main job (tools/rass_demo.py). Losses: MSE + L_SCL (cross-attention of
# the class-name tokens aligned with the masks); no LPIPS (its VGG weights cannot be had here,
# the reference uses MSE + 2·LPIPS), no VSD (off by default in the reference's RASS recipe too).
# Schedule for 600 CPU iterations instead of the reference's long constant 5e-5: AdamW 2e-3
# decayed to 0 by a cosine (SCR PSNR on the demo val set, docs/rass_demo.md: peak lr 5e-4
# 22.2 dB, 2e-3 23.2, 5e-3 22.7).
_base_ = ['./scr_tiny_demo.py']
model = dict(arch=None, pretrained_model_path='data/tiny_sd')
max_iters = 600
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0, by_epoch=False,
                        begin=0, end=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=max_iters))
