# Evaluate the SegSR x4 model (segsr_sd21_x4_realisr.py) on RealLQ250, real LQ photos without HQ
# images: the no-reference metrics only.
#   python tools/test.py configs/segsr/segsr_sd21_x4_reallq250.py CHECKPOINT
_base_ = ['./segsr_sd21_x4_realisr.py']
test_dataloader = dict(dataset=dict(data_prefix=dict(_delete_=True, img_path='RealLQ250'),
                                    pipeline={{_base_.lq_only_pipeline}}))
test_evaluator = dict(_delete_=True, type='RestorationMetric',
                      metrics=['NIQE', 'MUSIQ', 'MANIQA', 'CLIPIQA'],
                      iqa_weights_dir='checkpoints/iqa')
