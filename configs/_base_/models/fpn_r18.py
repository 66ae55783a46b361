# mmseg's Semantic FPN with a ResNet-18 (BN, from scratch), sized for the demo crops on CPU.
_base_ = ['mmseg::_base_/models/fpn_r50.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 256)),
    pretrained=None,
    backbone=dict(type='ResNetV1c', depth=18, norm_cfg=norm_cfg),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
    decode_head=dict(in_channels=[128] * 4, channels=64, num_classes=19, norm_cfg=norm_cfg))
