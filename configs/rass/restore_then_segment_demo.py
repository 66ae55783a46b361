# Restore-then-segment (R2S, the paper's baseline) on the demo data degraded online: the tiny SCR
# restorer (its LoRA file) restores each LQ image, then the FPN-R18 baseline trained on clean
# images segments it. Evaluation only; the checkpoint given to tools/test.py is the segmentor's:
#   python tools/train.py configs/baseline/fpn_r18_demo_cityscapes.py --work-dir work_dirs/fpn_r18
#   python tools/test.py configs/rass/restore_then_segment_demo.py work_dirs/fpn_r18/iter_300.pth
# with the SCR LoRA file of configs/scr/scr_tiny_demo.py at work_dirs/scr_tiny_demo/scr_lora.safetensors.
_base_ = ['../baseline/fpn_r18_demo_cityscapes.py']
tiny_sd = dict(
    unet_config=dict(
        sample_size=8, in_channels=4, out_channels=4,
        down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                          'DownBlock2D'),
        up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                        'CrossAttnUpBlock2D'),
        block_out_channels=(16, 32, 32, 32), layers_per_block=1, attention_head_dim=(2, 4, 4, 4),
        cross_attention_dim=32, norm_num_groups=8, use_linear_projection=True),
    vae_config=dict(
        in_channels=3, out_channels=3, down_block_types=('DownEncoderBlock2D', ) * 4,
        up_block_types=('UpDecoderBlock2D', ) * 4, block_out_channels=(8, 16, 16, 16),
        layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=64),
    text_encoder_config=dict(
        vocab_size=515, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=32, bos_token_id=512,
        eos_token_id=513, pad_token_id=514))
model = dict(
    _delete_=True,
    type='RestoreThenSegment',
    restorer=dict(type='SCRRestorer', scr_lora='work_dirs/scr_tiny_demo/scr_lora.safetensors',
                  scl_loss=None, **tiny_sd),
    segmentor={{_base_.model}})
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='Degrade', preset='rass_x1', deterministic=True),
    dict(type='Resize', scale=(512, 256), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
