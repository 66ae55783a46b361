# The SegSR demo from the project's pretrained tiny Stable Diffusion (tools/pretrain_tiny_sd.py ->
# data/tiny_sd), as the full-scale configs start from SD2.1-base: the SRDM's UNet is fine-tuned
# from the pretrained denoiser, its VAE stays frozen (as SD's does there). Everything else is
# segsr_tiny_demo.py (whose random tiny SD only shows the plumbing and keeps the tests fast).
#   python tools/pretrain_tiny_sd.py
#   python tools/train.py configs/segsr/segsr_tiny_sd_demo.py
#   python tools/segsr_refinement.py --model bridge configs/segsr/segsr_tiny_sd_demo.py CKPT \
#       --model no-bridge configs/segsr/segsr_tiny_sd_demo_nobridge.py CKPT2
_base_ = ['./segsr_tiny_demo.py']
model = dict(srdm=dict(pretrained_model_path='data/tiny_sd', arch=None, train_vae=False))
