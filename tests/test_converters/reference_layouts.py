"""Synthetic checkpoints in the reference implementations' layouts (names and shapes derived
from Ka1Guan/RASS and cswry/OSEDiff), built on the meta device or with small real tensors."""
import torch

# Substrings the reference code greps parameter names with to choose LoRA targets
# (OSEDiff's UNet list; RASS's segmentation LoRA uses it without conv_out).
REFERENCE_UNET_PATTERNS = ['to_k', 'to_q', 'to_v', 'to_out.0', 'conv', 'conv1', 'conv2', 'conv_in',
                           'conv_shortcut', 'conv_out', 'proj_out', 'proj_in', 'ff.net.2',
                           'ff.net.0.proj']
REFERENCE_VAE_PATTERNS = ['conv1', 'conv2', 'conv_in', 'conv_shortcut', 'conv', 'conv_out', 'to_k',
                          'to_q', 'to_v', 'to_out.0']
# basicsr DiffJPEG parameters (the RASS backbone's ``jpeger``).
DIFFJPEG_SHAPES = {
    'compress.l1.0.shift': (3, ), 'compress.l1.0.matrix': (3, 3), 'compress.l2.1.tensor': (8, 8, 8, 8),
    'compress.l2.1.scale': (8, 8), 'compress.c_quantize.c_table': (8, 8),
    'compress.y_quantize.y_table': (8, 8), 'decompress.c_dequantize.c_table': (8, 8),
    'decompress.y_dequantize.y_table': (8, 8), 'decompress.idct.alpha': (8, 8),
    'decompress.idct.tensor': (8, 8, 8, 8), 'decompress.colors.shift': (3, ),
    'decompress.colors.matrix': (3, 3)}


def reference_unet_groups(unet, with_conv_out):
    """The reference's encoder / decoder / others LoRA module lists of a UNet."""
    groups = dict(encoder=[], decoder=[], others=[])
    for name, _ in unet.named_parameters():
        if 'bias' in name or 'norm' in name:
            continue
        if not any(p in name for p in REFERENCE_UNET_PATTERNS):
            continue
        module = name.replace('.weight', '')
        if 'down_blocks' in name or 'conv_in' in name:
            groups['encoder'].append(module)
        elif 'up_blocks' in name or 'conv_out' in name:
            groups['decoder'].append(module)
        else:
            groups['others'].append(module)
    if not with_conv_out:
        for modules in groups.values():
            if 'conv_out' in modules:
                modules.remove('conv_out')
    return groups


def reference_vae_modules(vae):
    """OSEDiff's VAE-encoder LoRA module list (with its repeats)."""
    modules = []
    for name, _ in vae.named_parameters():
        if 'bias' in name or 'norm' in name:
            continue
        for pattern in REFERENCE_VAE_PATTERNS:
            if pattern in name and 'encoder' in name:
                modules.append(name.replace('.weight', ''))
            elif 'quant_conv' in name and 'post_quant_conv' not in name:
                modules.append(name.replace('.weight', ''))
    return modules


def add_reference_adapters(model, groups, suffix, rank=4):
    """peft adapters ``default_<group><suffix>`` as the reference adds them (no lora_alpha)."""
    from peft import LoraConfig
    for group, modules in groups.items():
        model.add_adapter(LoraConfig(r=rank, init_lora_weights='gaussian', target_modules=modules),
                          adapter_name=f'default_{group}{suffix}')
    model.set_adapter([f'default_{g}{suffix}' for g in groups])


def osediff_pickle(unet, vae, vae_modules, rank=4):
    """The dict ``OSEDiff_gen.save_model`` writes, from models already carrying the adapters
    (``vae_modules``: the list :func:`reference_vae_modules` gave before the VAE adapter)."""
    groups = {g: [] for g in ('encoder', 'decoder', 'others')}
    for name, module in unet.named_modules():
        for group in groups:
            if f'default_{group}' in getattr(module, 'lora_A', {}):
                groups[group].append(name)
    return dict(
        rank_unet=rank, rank_vae=rank,
        unet_lora_encoder_modules=groups['encoder'], unet_lora_decoder_modules=groups['decoder'],
        unet_lora_others_modules=groups['others'],
        vae_lora_encoder_modules=vae_modules,
        state_dict_unet={k: v for k, v in unet.state_dict().items() if 'lora' in k or 'conv_in' in k},
        state_dict_vae={k: v for k, v in vae.state_dict().items() if 'lora' in k})


def d2_projection(index, in_channels, out_channels=512):
    """Detectron2 BottleneckBlock (GN) keys of ``feature_projections.{index}``."""
    mid = out_channels // 4
    p = f'backbone.feature_extractor.feature_projections.{index}.0.'
    shapes = {p + 'conv1.weight': (mid, in_channels, 1, 1), p + 'conv2.weight': (mid, mid, 3, 3),
              p + 'conv3.weight': (out_channels, mid, 1, 1),
              p + 'shortcut.weight': (out_channels, in_channels, 1, 1)}
    for conv, ch in (('conv1', mid), ('conv2', mid), ('conv3', out_channels),
                     ('shortcut', out_channels)):
        shapes[f'{p}{conv}.norm.weight'] = shapes[f'{p}{conv}.norm.bias'] = (ch, )
    return shapes


def d2_mask2former(in_channels, dim=256, enc_layers=6, enc_ffn=1024, dec_layers=9, dec_ffn=2048,
                   queries=100, classes=150, heads=8, levels=3, points=4):
    """Detectron2 Mask2Former keys (MSDeformAttnPixelDecoder + MultiScaleMaskedTransformerDecoder)."""
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
        s[f'{pr}mask_embed.layers.{i}.weight'], s[f'{pr}mask_embed.layers.{i}.bias'] = (dim, dim), (dim, )
    s['criterion.empty_weight'] = (classes + 1, )
    return s


def rass_detectron2_state(unet, vae, text_encoder, proj_channels, head_kwargs, device='meta'):
    """The RASS authors' model state dict: ``unet`` already carries the merged SCR weights and
    the three ``_s2`` segmentation adapters; RAM / DAPE and DiffJPEG included."""
    d2 = 'backbone.feature_extractor.'
    state = {f'{d2}sd.unet.{k}': v for k, v in unet.state_dict().items()}
    state.update({f'{d2}sd.vae.{k}': v for k, v in vae.state_dict().items()})
    state.update({f'{d2}sd.text_encoder.{k}': v for k, v in text_encoder.state_dict().items()})
    shapes = {}
    for i, c in enumerate(proj_channels):
        shapes.update(d2_projection(i, c, head_kwargs.get('proj_out', 512)))
    shapes.update(d2_mask2former(**{k: v for k, v in head_kwargs.items() if k != 'proj_out'}))
    shapes.update({f'backbone.jpeger.{k}': v for k, v in DIFFJPEG_SHAPES.items()})
    for tagger in ('ram', 'dape'):  # Swin-L tagger weights (a few representative tensors)
        shapes[f'{d2}{tagger}.visual_encoder.patch_embed.proj.weight'] = (192, 3, 4, 4)
        shapes[f'{d2}{tagger}.label_embed'] = (4585, 512)
        shapes[f'{d2}{tagger}.tagging_head.encoder.layer.0.attention.self.query.weight'] = (768, 768)
    gen = torch.Generator().manual_seed(0)
    for key, shape in shapes.items():
        state[key] = (torch.empty(shape, device='meta') if device == 'meta' else
                      torch.randn(shape, generator=gen))
    return state
