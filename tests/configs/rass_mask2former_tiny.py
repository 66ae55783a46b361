# configs/rass/rass_mask2former_ade20k_lq.py at CPU-test size: tiny random SD, a 1-encoder-layer /
# 2-decoder-layer Mask2Former with 32 channels, 8 queries, 5 classes, 64x64 crops.
_base_ = ['../../configs/rass/rass_mask2former_ade20k_lq.py']
num_classes = 5
crop_size = (64, 64)
attn = dict(embed_dims=32, num_heads=4)
ffn = dict(embed_dims=32, feedforward_channels=64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(pretrained_model_path=None, arch='tiny', scr_lora=None, out_channels=32,
                  dtype='float32', prompt='empty', test_prompt=None),  # no tag cache here
    decode_head=dict(
        in_channels=[32] * 4, feat_channels=32, out_channels=32, num_queries=8,
        num_classes=num_classes,
        pixel_decoder=dict(
            encoder=dict(num_layers=1, layer_cfg=dict(self_attn_cfg=dict(num_points=2, **attn),
                                                      ffn_cfg=ffn)),
            positional_encoding=dict(num_feats=16)),
        positional_encoding=dict(num_feats=16),
        transformer_decoder=dict(
            num_layers=2,
            layer_cfg=dict(self_attn_cfg=attn, cross_attn_cfg=attn, ffn_cfg=ffn)),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        train_cfg=dict(num_points=256)))
