# Evaluate the SegSR x4 model (segsr_sd21_x4_realisr.py) on drealsr:
#   python tools/test.py configs/segsr/segsr_sd21_x4_drealsr.py CHECKPOINT
_base_ = ['./segsr_sd21_x4_realisr.py']
test_dataloader = {{_base_.drealsr}}
