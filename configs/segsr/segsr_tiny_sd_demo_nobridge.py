# segsr_tiny_sd_demo.py without the Dual-Modality Bridge (the ablation).
_base_ = ['./segsr_tiny_sd_demo.py']
model = dict(bridge=False)
