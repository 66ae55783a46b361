"""The key list (names and shapes) of the RASS authors' released ``rass.pth``, derived from THEIR
code's rules — Ka1Guan/RASS and Detectron2 — and never from this project's modules.

``train_net.py`` saves ``MaskFormer_rass`` (``rass/rass.py``) with Detectron2's checkpointer,
``{'model': state_dict, ...}``. Its modules, by the reference code:

* ``backbone`` = ``RASS`` (``rass/modeling/backbone/rass_backbone.py``): ``feature_extractor`` =
  ``FeatureProjection`` (``feature_projection.py``) and ``jpeger`` = basicsr's ``DiffJPEG``
  (l. 65; its parameters: ``basicsr/utils/diffjpeg.py``). ``pulse_tensor`` is a plain tensor.
* ``feature_extractor.sd`` = ``Generator_with_pretrain`` (``restoration_adaptation/ras.py``):
  ``text_encoder`` (CLIP), ``vae`` (AutoencoderKL: encoder, decoder, quant_conv,
  post_quant_conv) and ``unet``, whose SCR LoRA adapters ``default_{encoder,decoder,others}``
  are merged by ``merge_and_unload`` (l. 33-36: plain module names again), then the segmentation
  LoRA is added as three peft adapters ``default_{encoder,decoder,others}_s2`` (``unet_lora``,
  l. 63-91: rank 4, gaussian, no alpha → peft's 8; targets by substring, split by position,
  ``conv_out`` removed). ``sched``, ``tokenizer`` and ``timesteps`` hold no tensors of the state.
* ``feature_extractor.ram`` / ``.dape`` — RAM and DAPE (``ram_lora.py`` ``RAMLora``, Swin-L).
* ``feature_extractor.feature_projections.{i}`` = ``nn.Sequential(*ResNet.make_stage(
  BottleneckBlock, num_blocks=1, in_channels=FEATURE_DIMS[i], bottleneck_channels=512 // 4,
  out_channels=512, norm='GN'))`` (``feature_projection.py`` l. 57-71), one per tapped feature:
  VAE encoder down-block outputs 1 and 3 (``ras.py`` l. 122-123; ``vae.py`` ``Encoder.forward``
  appends every down block's output) and the outputs of the UNet's 4 up blocks
  (``unet_2d_condition.py`` l. 1183-1215) — ``FEATURE_DIMS: [256, 512, 1280, 1280, 640, 320]``
  in ``maskformer2_RASS.yaml``. Detectron2's ``BottleneckBlock`` (``resnet.py`` l. 100-210):
  ``conv1`` (1x1), ``conv2`` (3x3), ``conv3`` (1x1), each a ``Conv2d`` without bias whose
  ``norm`` child is ``nn.GroupNorm(32, C)``; a ``shortcut`` 1x1 conv + norm **only when
  in_channels != out_channels** (l. 132-142), so the 512-channel VAE feature has none.
* ``sem_seg_head`` = ``MaskFormerHead``: ``pixel_decoder`` (``MSDeformAttnPixelDecoder``) and
  ``predictor`` (``MultiScaleMaskedTransformerDecoder``, ``DEC_LAYERS - 1`` = 9 layers).
* ``criterion.empty_weight`` — ``SetCriterion``'s buffer (``criterion.py`` l. 113-115);
  ``pixel_mean`` / ``pixel_std`` are non-persistent.
"""
import torch

from reference_layouts import add_reference_adapters, reference_unet_groups

FP = 'backbone.feature_extractor.'

# stabilityai/stable-diffusion-2-1-base, {unet,vae,text_encoder}/config.json.
SD21_BASE = dict(
    unet=dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
              down_block_types=('CrossAttnDownBlock2D', ) * 3 + ('DownBlock2D', ),
              up_block_types=('UpBlock2D', ) + ('CrossAttnUpBlock2D', ) * 3,
              block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20),
              cross_attention_dim=1024, use_linear_projection=True, norm_num_groups=32),
    vae=dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
             down_block_types=('DownEncoderBlock2D', ) * 4,
             up_block_types=('UpDecoderBlock2D', ) * 4,
             block_out_channels=(128, 256, 512, 512), norm_num_groups=32, sample_size=768),
    text_encoder=dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096,
                      num_hidden_layers=23, num_attention_heads=16, max_position_embeddings=77,
                      projection_dim=512, hidden_act='gelu'))

# The released model's head (maskformer2_R50_bs16_160k.yaml + Base-ADE20K): 256-d, 6 deformable
# encoder layers (FFN 1024), 10 - 1 = 9 decoder layers (FFN 2048), 100 queries, 150 classes,
# 8 heads, 3 levels x 4 points; projections to 512 channels.
RELEASED_HEAD = dict(proj_dim=512, dim=256, enc_layers=6, enc_ffn=1024, dec_layers=9,
                     dec_ffn=2048, queries=100, classes=150, heads=8, levels=3, points=4)

# basicsr DiffJPEG parameters (diffjpeg.py: RGB2YCbCrJpeg shift/matrix, DCT8x8 tensor/scale,
# the quantisation tables shared by (de)quantisers, iDCT8x8 alpha/tensor, YCbCr2RGBJpeg).
DIFFJPEG_SHAPES = {
    'compress.l1.0.shift': (3, ), 'compress.l1.0.matrix': (3, 3),
    'compress.l2.1.tensor': (8, 8, 8, 8), 'compress.l2.1.scale': (8, 8),
    'compress.c_quantize.c_table': (8, 8), 'compress.y_quantize.y_table': (8, 8),
    'decompress.c_dequantize.c_table': (8, 8), 'decompress.y_dequantize.y_table': (8, 8),
    'decompress.idct.alpha': (8, 8), 'decompress.idct.tensor': (8, 8, 8, 8),
    'decompress.colors.shift': (3, ), 'decompress.colors.matrix': (3, 3)}

# One tensor per top-level member of RAMLora (ram_lora.py l. 60-153; Swin-L 384: embed 192,
# loralib MergedLinear qkv with r=8 on q and v; BERT q2l/med configs: 768-d; 4585 tags).
RAM_SHAPES = {
    'visual_encoder.patch_embed.proj.weight': (192, 3, 4, 4),
    'visual_encoder.layers.0.blocks.0.attn.qkv.weight': (576, 192),
    'visual_encoder.layers.0.blocks.0.attn.qkv.lora_A': (16, 192),
    'visual_encoder.layers.0.blocks.0.attn.qkv.lora_B': (384, 8),
    'image_proj.weight': (512, 1536), 'label_embed': (4585, 512),
    'tag_encoder.encoder.layer.0.attention.self.query.weight': (768, 768),
    'text_decoder.cls.predictions.bias': (30524, ),
    'tagging_head.encoder.layer.0.crossattention.self.key.weight': (768, 512),
    'wordvec_proj.weight': (768, 512), 'fc.weight': (1, 768)}


def feature_dims(sd):
    """Channels of the tapped features: VAE down blocks 1 and 3, then UNet up blocks 0..3."""
    vae, unet = sd['vae']['block_out_channels'], sd['unet']['block_out_channels']
    return [vae[1], vae[3]] + list(reversed(unet))


def d2_bottleneck(prefix, in_channels, out_channels, bottleneck_channels):
    """Detectron2 ``BottleneckBlock`` (stride 1, norm 'GN') parameter shapes under ``prefix``."""
    convs = {'conv1': (bottleneck_channels, in_channels, 1, 1),
             'conv2': (bottleneck_channels, bottleneck_channels, 3, 3),
             'conv3': (out_channels, bottleneck_channels, 1, 1)}
    if in_channels != out_channels:
        convs['shortcut'] = (out_channels, in_channels, 1, 1)
    shapes = {}
    for name, shape in convs.items():
        shapes[f'{prefix}{name}.weight'] = shape
        shapes[f'{prefix}{name}.norm.weight'] = shapes[f'{prefix}{name}.norm.bias'] = shape[:1]
    return shapes


def d2_mask2former(in_channels, dim, enc_layers, enc_ffn, dec_layers, dec_ffn, queries, classes,
                   heads, levels, points):
    """``sem_seg_head.*`` and ``criterion.empty_weight`` shapes (rass/modeling: msdeformattn.py
    input_proj / transformer / mask_features / adapter_1 + layer_1; mask2former_transformer_
    decoder.py self / cross attention and FFN layers, decoder_norm, query_feat, query_embed,
    level_embed, class_embed, mask_embed; ENFORCE_INPUT_PROJ False: no decoder input_proj)."""
    s, pd, pr = {}, 'sem_seg_head.pixel_decoder.', 'sem_seg_head.predictor.'
    for i, c in enumerate(reversed(in_channels[1:])):  # res5, res4, res3
        s[f'{pd}input_proj.{i}.0.weight'] = (dim, c, 1, 1)
        s[f'{pd}input_proj.{i}.0.bias'] = s[f'{pd}input_proj.{i}.1.weight'] = (dim, )
        s[f'{pd}input_proj.{i}.1.bias'] = (dim, )
    s[f'{pd}transformer.level_embed'] = (levels, dim)
    for i in range(enc_layers):
        e = f'{pd}transformer.encoder.layers.{i}.'
        s[e + 'self_attn.sampling_offsets.weight'] = (heads * levels * points * 2, dim)
        s[e + 'self_attn.sampling_offsets.bias'] = (heads * levels * points * 2, )
        s[e + 'self_attn.attention_weights.weight'] = (heads * levels * points, dim)
        s[e + 'self_attn.attention_weights.bias'] = (heads * levels * points, )
        for lin in ('value_proj', 'output_proj'):
            s[f'{e}self_attn.{lin}.weight'], s[f'{e}self_attn.{lin}.bias'] = (dim, dim), (dim, )
        for norm in ('norm1', 'norm2'):
            s[f'{e}{norm}.weight'] = s[f'{e}{norm}.bias'] = (dim, )
        s[e + 'linear1.weight'], s[e + 'linear1.bias'] = (enc_ffn, dim), (enc_ffn, )
        s[e + 'linear2.weight'], s[e + 'linear2.bias'] = (dim, enc_ffn), (dim, )
    s[f'{pd}mask_features.weight'], s[f'{pd}mask_features.bias'] = (dim, dim, 1, 1), (dim, )
    s[f'{pd}adapter_1.weight'] = (dim, in_channels[0], 1, 1)
    s[f'{pd}layer_1.weight'] = (dim, dim, 3, 3)
    for conv in ('adapter_1', 'layer_1'):
        s[f'{pd}{conv}.norm.weight'] = s[f'{pd}{conv}.norm.bias'] = (dim, )
    for i in range(dec_layers):
        for kind, attn in (('self', 'self_attn'), ('cross', 'multihead_attn')):
            a = f'{pr}transformer_{kind}_attention_layers.{i}.'
            s[f'{a}{attn}.in_proj_weight'], s[f'{a}{attn}.in_proj_bias'] = (3 * dim, dim), (3 * dim, )
            s[f'{a}{attn}.out_proj.weight'], s[f'{a}{attn}.out_proj.bias'] = (dim, dim), (dim, )
            s[a + 'norm.weight'] = s[a + 'norm.bias'] = (dim, )
        f = f'{pr}transformer_ffn_layers.{i}.'
        s[f + 'linear1.weight'], s[f + 'linear1.bias'] = (dec_ffn, dim), (dec_ffn, )
        s[f + 'linear2.weight'], s[f + 'linear2.bias'] = (dim, dec_ffn), (dim, )
        s[f + 'norm.weight'] = s[f + 'norm.bias'] = (dim, )
    s[pr + 'decoder_norm.weight'] = s[pr + 'decoder_norm.bias'] = (dim, )
    s[pr + 'query_feat.weight'] = s[pr + 'query_embed.weight'] = (queries, dim)
    s[pr + 'level_embed.weight'] = (levels, dim)
    s[pr + 'class_embed.weight'], s[pr + 'class_embed.bias'] = (classes + 1, dim), (classes + 1, )
    for i in range(3):
        s[f'{pr}mask_embed.layers.{i}.weight'] = (dim, dim)
        s[f'{pr}mask_embed.layers.{i}.bias'] = (dim, )
    s['criterion.empty_weight'] = (classes + 1, )
    return s


def rass_checkpoint_state(sd=SD21_BASE, head=RELEASED_HEAD, device='meta', seed=0):
    """The authors' model state dict (``checkpoint['model']`` of ``rass.pth``).

    Args:
        sd (dict): diffusers / transformers constructor arguments ``unet``, ``vae``,
            ``text_encoder`` (default SD2.1-base, the released model).
        head (dict): ``proj_dim`` and the :func:`d2_mask2former` sizes.
        device (str): ``'meta'`` (shapes only) or ``'cpu'`` (random values; trained-like
            segmentation LoRA, i.e. non-zero ``lora_B``).
        seed (int): Seed of the values.

    Returns:
        tuple[dict[str, Tensor], UNet2DConditionModel]: The state, and the UNet as the
        reference holds it (SCR merged, the three ``_s2`` adapters active).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**sd['unet'])
        vae = AutoencoderKL(**sd['vae'])
        text = CLIPTextModel(CLIPTextConfig(**sd['text_encoder']))
        add_reference_adapters(unet, reference_unet_groups(unet, with_conv_out=False), '_s2')
    if device != 'meta':
        with torch.no_grad():
            for name, param in unet.named_parameters():
                if '.lora_B.' in name:
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    state = {}
    for part, module in (('unet', unet), ('vae', vae), ('text_encoder', text)):
        state.update({f'{FP}sd.{part}.{k}': v for k, v in module.state_dict().items()})
    proj = head['proj_dim']
    shapes = {}
    for i, channels in enumerate(feature_dims(sd)):
        shapes.update(d2_bottleneck(f'{FP}feature_projections.{i}.0.', channels, proj, proj // 4))
    shapes.update(d2_mask2former([proj] * 4, **{k: v for k, v in head.items() if k != 'proj_dim'}))
    shapes.update({f'backbone.jpeger.{k}': v for k, v in DIFFJPEG_SHAPES.items()})
    for tagger in ('ram', 'dape'):
        shapes.update({f'{FP}{tagger}.{k}': v for k, v in RAM_SHAPES.items()})
    for key, shape in shapes.items():
        state[key] = (torch.empty(shape, device='meta') if device == 'meta' else
                      torch.randn(shape, generator=gen))
    return state, unet
