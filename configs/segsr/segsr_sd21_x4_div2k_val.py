# Evaluate the SegSR x4 model (segsr_sd21_x4_realisr.py) on div2k_val:
#   python tools/test.py configs/segsr/segsr_sd21_x4_div2k_val.py CHECKPOINT
_base_ = ['./segsr_sd21_x4_realisr.py']
test_dataloader = {{_base_.div2k_val}}
