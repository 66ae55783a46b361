# SPT on the tiny demo SegFormer: the pretrained segmentor is frozen, SPT units are the only
# trainable parameters; SPT needs priors at test time too. Priors: `python
# tools/extract_sam_priors.py THIS_CONFIG --split train --stand-in --out
# data/demo_cityscapes/sam_priors/rass_x1_stand_in` (and --split val); the frozen segmentor:
# train segformer-tiny_demo-cityscapes-lq.py, then pass
# `--cfg-options load_from=work_dirs/segformer-tiny_demo-cityscapes-lq/iter_200.pth`.
_base_ = [
    '../_base_/models/segformer_mit-tiny.py',
    '../_base_/datasets/demo_cityscapes_lq_sam_priors.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/demo_200it.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
val_dataloader = dict(dataset=dict(pipeline=_base_.sam_test_pipeline))
test_dataloader = val_dataloader
model = dict(
    type='SAMPriorEncoderDecoder',
    trainable_modules=['neck'],
    neck=dict(type='SPTNeck', in_channels=[16, 32, 80, 128], hidden_channels=16, mask_drop=0.5))
load_from = None
