# The SegSR demo without the Dual-Modality Bridge (the ablation): SRDM and SegDM are trained and
# sampled side by side, each conditioned on the LQ image only.
#   python tools/train.py configs/segsr/segsr_tiny_demo_nobridge.py
_base_ = ['./segsr_tiny_demo.py']
model = dict(bridge=False)
