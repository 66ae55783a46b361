# Rows of the RASS paper's Table 1 protocol on the demo data (tools/lq_protocol.py --rows):
#   python tools/train.py configs/baseline/fpn_r18_demo_cityscapes.py \
#       --work-dir work_dirs/fpn_r18_demo_cityscapes         # DT, and R2S's segmentor
#   python tools/train.py configs/baseline/fpn_r18_demo_cityscapes_lq.py \
#       --work-dir work_dirs/fpn_r18_demo_cityscapes_lq      # FT
#   python tools/train.py configs/scr/scr_tiny_demo.py --work-dir work_dirs/scr_tiny_demo
#   python tools/train.py configs/rass/rass_tiny_demo.py --work-dir work_dirs/rass_tiny_demo
#   python tools/lq_protocol.py --rows configs/rass/lq_protocol_demo.py \
#       --work-dir work_dirs/lq_protocol_demo
rows = [
    dict(name='FPN-R18', config='configs/baseline/fpn_r18_demo_cityscapes.py',
         checkpoint='work_dirs/fpn_r18_demo_cityscapes/iter_300.pth',
         restorer_config='configs/scr/scr_tiny_demo.py',
         restorer_checkpoint='work_dirs/scr_tiny_demo/iter_200.pth',
         ft_config='configs/baseline/fpn_r18_demo_cityscapes_lq.py',
         ft_checkpoint='work_dirs/fpn_r18_demo_cityscapes_lq/iter_300.pth'),
    dict(name='RASS (tiny random SD)', ft_config='configs/rass/rass_tiny_demo.py',
         ft_checkpoint='work_dirs/rass_tiny_demo/iter_300.pth'),
]
eval_sets = ['demo']
