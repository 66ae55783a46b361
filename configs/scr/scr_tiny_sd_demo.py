# SCR (the RASS paper's restorer, OSEDiff recipe) from the project's pretrained tiny Stable
# Diffusion (tools/pretrain_tiny_sd.py -> data/tiny_sd), trained on the demo data: the first
# stage of the README's main job (tools/rass_demo.py). Losses: MSE + L_SCL (cross-attention of
# the class-name tokens aligned with the masks); no LPIPS (its VGG weights cannot be had here,
# the reference uses MSE + 2·LPIPS), no VSD (off by default in the reference's RASS recipe too).
_base_ = ['./scr_tiny_demo.py']
model = dict(arch=None, pretrained_model_path='data/tiny_sd')
max_iters = 600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=max_iters))
