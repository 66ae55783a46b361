# A tiny SegFormer for CPU demos: MiT with a 16-dim first stage and one block per stage, BN,
# 128x256 crops, 19 classes.
_base_ = ['mmseg::_base_/models/segformer_mit-b0.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 256)),
    backbone=dict(embed_dims=16, num_layers=[1, 1, 1, 1], num_heads=[1, 2, 5, 8],
                  drop_path_rate=0.),
    decode_head=dict(in_channels=[16, 32, 80, 128], channels=64, norm_cfg=norm_cfg))
