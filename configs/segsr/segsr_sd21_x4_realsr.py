# Evaluate the SegSR x4 model (segsr_sd21_x4_realisr.py) on realsr:
#   python tools/test.py configs/segsr/segsr_sd21_x4_realsr.py CHECKPOINT
_base_ = ['./segsr_sd21_x4_realisr.py']
test_dataloader = {{_base_.realsr}}
