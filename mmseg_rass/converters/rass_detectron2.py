"""The RASS authors' Detectron2 checkpoint → an mmseg checkpoint of the RASS + Mask2Former config.

Layout of the authors' model (Ka1Guan/RASS: ``rass/rass.py`` ``MaskFormer_rass``, backbone
``rass/modeling/backbone/{rass_backbone,feature_projection}.py``, generator
``restoration_adaptation/ras.py``, head = Mask2Former's ``MSDeformAttnPixelDecoder`` +
``MultiScaleMaskedTransformerDecoder``), saved by Detectron2's checkpointer as
``{'model': state_dict, ...}``:

* ``backbone.feature_extractor.sd.unet.*`` — the SD UNet with the SCR LoRA already merged
  (``merge_and_unload``) and the segmentation LoRA as three peft adapters
  ``default_{encoder,decoder,others}_s2`` (targets split by position, rank 4, alpha 8);
* ``backbone.feature_extractor.sd.vae.*`` — the SD VAE; ``sd.text_encoder.*`` — CLIP;
* ``backbone.feature_extractor.{ram,dape}.*`` — the RAM / DAPE taggers of the prompts;
* ``backbone.feature_extractor.feature_projections.{i}.0.*`` — Detectron2 ``BottleneckBlock``
  (conv1/conv2/conv3, each with a GroupNorm ``.norm``, and a ``shortcut`` conv + norm only
  when the feature is not already 512 wide), one per feature (VAE 256, 512; UNet 1280, 1280,
  640, 320 channels: projection 1 has no shortcut);
* ``backbone.jpeger.*`` — the DiffJPEG of the online degradation;
* ``sem_seg_head.pixel_decoder.*``, ``sem_seg_head.predictor.*`` — Mask2Former;
* ``criterion.empty_weight`` — the no-object class weight.
"""
from .common import KeyMapper

_D2 = r'backbone\.feature_extractor\.'
_PD = r'sem_seg_head\.pixel_decoder\.'
_PR = r'sem_seg_head\.predictor\.'
_HEAD = 'decode_head.'

# The segmentation adapters of the RASS generator (``unet_lora`` in ras.py); one peft adapter
# ``seg`` over the union of their (disjoint) targets here.
SEG_ADAPTERS = ('default_encoder_s2', 'default_decoder_s2', 'default_others_s2')


def _no_other_lora(match):
    key = match.group(1)
    if '.lora_' in key:
        raise ValueError(f'UNet tensor {key} belongs to a LoRA adapter other than '
                         f'{SEG_ADAPTERS}: the SCR LoRA should be merged in a RASS checkpoint')
    return f'backbone.unet.{key}'


def _projection(match):
    index, conv, norm, param = match.groups()
    body = {'conv1': 'body.0', 'conv2': 'body.1', 'conv3': 'body.2', 'shortcut': 'shortcut'}[conv]
    return f'backbone.projections.{index}.{body}.{"gn" if norm else "conv"}.{param}'


RULES = [
    # backbone: UNet (segmentation LoRA → adapter "seg"; merged base weights as they are)
    (_D2 + r'sd\.unet\.(.+)\.lora_(A|B)\.default_(?:encoder|decoder|others)_s2\.weight',
     r'backbone.unet.\1.lora_\2.seg.weight'),
    (_D2 + r'sd\.unet\.(.+)', _no_other_lora),
    (_D2 + r'sd\.vae\.encoder\.(.+)', r'backbone.vae_encoder.\1'),
    (_D2 + r'sd\.vae\.quant_conv\.(.+)', r'backbone.vae_quant_conv.\1'),
    (_D2 + r'feature_projections\.(\d+)\.0\.(conv[123]|shortcut)(\.norm)?\.(weight|bias)',
     _projection),
    # Mask2Former pixel decoder
    (_PD + r'input_proj\.(\d)\.0\.(weight|bias)', _HEAD + r'pixel_decoder.input_convs.\1.conv.\2'),
    (_PD + r'input_proj\.(\d)\.1\.(weight|bias)', _HEAD + r'pixel_decoder.input_convs.\1.gn.\2'),
    (_PD + r'transformer\.level_embed', _HEAD + 'pixel_decoder.level_encoding.weight'),
    (_PD + r'transformer\.encoder\.layers\.(\d+)\.self_attn\.'
     r'(sampling_offsets|attention_weights|value_proj|output_proj)\.(weight|bias)',
     _HEAD + r'pixel_decoder.encoder.layers.\1.self_attn.\2.\3'),
    (_PD + r'transformer\.encoder\.layers\.(\d+)\.norm1\.(weight|bias)',
     _HEAD + r'pixel_decoder.encoder.layers.\1.norms.0.\2'),
    (_PD + r'transformer\.encoder\.layers\.(\d+)\.norm2\.(weight|bias)',
     _HEAD + r'pixel_decoder.encoder.layers.\1.norms.1.\2'),
    (_PD + r'transformer\.encoder\.layers\.(\d+)\.linear1\.(weight|bias)',
     _HEAD + r'pixel_decoder.encoder.layers.\1.ffn.layers.0.0.\2'),
    (_PD + r'transformer\.encoder\.layers\.(\d+)\.linear2\.(weight|bias)',
     _HEAD + r'pixel_decoder.encoder.layers.\1.ffn.layers.1.\2'),
    (_PD + r'mask_features\.(weight|bias)', _HEAD + r'pixel_decoder.mask_feature.\1'),
    (_PD + r'adapter_1\.weight', _HEAD + 'pixel_decoder.lateral_convs.0.conv.weight'),
    (_PD + r'adapter_1\.norm\.(weight|bias)', _HEAD + r'pixel_decoder.lateral_convs.0.gn.\1'),
    (_PD + r'layer_1\.weight', _HEAD + 'pixel_decoder.output_convs.0.conv.weight'),
    (_PD + r'layer_1\.norm\.(weight|bias)', _HEAD + r'pixel_decoder.output_convs.0.gn.\1'),
    # Mask2Former transformer decoder (order in a layer: cross-attn, self-attn, FFN)
    (_PR + r'transformer_cross_attention_layers\.(\d+)\.multihead_attn\.(.+)',
     _HEAD + r'transformer_decoder.layers.\1.cross_attn.attn.\2'),
    (_PR + r'transformer_cross_attention_layers\.(\d+)\.norm\.(weight|bias)',
     _HEAD + r'transformer_decoder.layers.\1.norms.0.\2'),
    (_PR + r'transformer_self_attention_layers\.(\d+)\.self_attn\.(.+)',
     _HEAD + r'transformer_decoder.layers.\1.self_attn.attn.\2'),
    (_PR + r'transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)',
     _HEAD + r'transformer_decoder.layers.\1.norms.1.\2'),
    (_PR + r'transformer_ffn_layers\.(\d+)\.linear1\.(weight|bias)',
     _HEAD + r'transformer_decoder.layers.\1.ffn.layers.0.0.\2'),
    (_PR + r'transformer_ffn_layers\.(\d+)\.linear2\.(weight|bias)',
     _HEAD + r'transformer_decoder.layers.\1.ffn.layers.1.\2'),
    (_PR + r'transformer_ffn_layers\.(\d+)\.norm\.(weight|bias)',
     _HEAD + r'transformer_decoder.layers.\1.norms.2.\2'),
    (_PR + r'decoder_norm\.(weight|bias)', _HEAD + r'transformer_decoder.post_norm.\1'),
    (_PR + r'(query_feat|query_embed|level_embed)\.weight', _HEAD + r'\1.weight'),
    (_PR + r'class_embed\.(weight|bias)', _HEAD + r'cls_embed.\1'),
    (_PR + r'mask_embed\.layers\.(\d)\.(weight|bias)',
     lambda m: f'{_HEAD}mask_embed.{2 * int(m.group(1))}.{m.group(2)}'),
]

# Tensors of the authors' model that the mmseg model does not have, and why.
DROPS = [
    (r'^' + _D2 + r'sd\.vae\.(decoder|post_quant_conv)\.',
     'SD VAE decoder: restores images, not used for the features'),
    (r'^' + _D2 + r'sd\.text_encoder\.',
     'SD CLIP text encoder: frozen SD weights; prompts are encoded from the SD folder'),
    (r'^' + _D2 + r'(ram|dape)\.',
     'RAM / DAPE taggers: run them elsewhere and give their tags as a tag cache'),
    (r'^backbone\.jpeger\.',
     'DiffJPEG of the online degradation: the Degrade transform does it here'),
    (r'^criterion\.empty_weight$',
     'no-object class weight: loss_cls.class_weight of the config'),
]


def convert_rass_state_dict(state, source='checkpoint'):
    """Convert the authors' RASS model state dict to mmseg keys.

    Args:
        state (dict[str, Tensor]): ``checkpoint['model']`` of the Detectron2 checkpoint.
        source (str): Name of the file, for errors.

    Returns:
        tuple[dict[str, Tensor], Counter]: The mmseg state dict (``backbone.*``,
        ``decode_head.*``) and the dropped tensors per reason.
    """
    return KeyMapper(RULES, DROPS, source)(state)


def target_shapes(model):
    """Every tensor an mmseg model loads (parameters + persistent buffers) with its shape,
    bypassing the trainable-only ``state_dict`` of the RASS backbone; the text encoder a
    ``gt`` prompt keeps comes from the SD folder and is left out."""
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    for mod_name, mod in model.named_modules():
        for name, buf in mod._buffers.items():
            if buf is not None and name not in mod._non_persistent_buffers_set:
                shapes[f'{mod_name}.{name}' if mod_name else name] = tuple(buf.shape)
    return {k: v for k, v in shapes.items() if not k.startswith('backbone.text_encoder.')}
