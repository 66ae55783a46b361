# A tiny SegFormer (MiT, 16-dim) trained on the degraded demo data on CPU: the pretrained,
# later frozen segmentor of the tiny SPT demo and the plain baseline of the SPD demos.
_base_ = [
    '../_base_/models/segformer_mit-tiny.py',
    '../_base_/datasets/demo_cityscapes_lq.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/demo_200it.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
