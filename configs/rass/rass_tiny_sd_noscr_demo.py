# The RASS paper's central ablation in miniature: the recipe of rass_tiny_sd_demo.py from the
# same pretrained tiny Stable Diffusion, without the SCR LoRA (plain SD + segmentation LoRA).
_base_ = ['./rass_tiny_sd_demo.py']
model = dict(backbone=dict(scr_lora=None))
