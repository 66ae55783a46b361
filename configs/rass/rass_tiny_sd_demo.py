# RASS from the project's pretrained tiny Stable Diffusion with the SCR LoRA merged into its UNet
# and a fresh segmentation LoRA (configs/scr/scr_tiny_sd_demo.py -> tools/export_scr_lora.py):
# the method of the README's main job (tools/rass_demo.py), on the demo data degraded online.
_base_ = ['./rass_tiny_demo.py']
model = dict(backbone=dict(
    arch=None,
    pretrained_model_path='data/tiny_sd',
    # tools/rass_demo.py exports it there (and passes its own path for another work dir).
    scr_lora='work_dirs/rass_demo/scr/scr_lora.safetensors'))
