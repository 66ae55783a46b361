"""tools/convert_rass_checkpoint.py: the authors' Detectron2 RASS + Mask2Former checkpoint → mmseg."""
import os.path as osp
import runpy
import sys

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from reference_layouts import (add_reference_adapters, rass_detectron2_state,  # noqa: E402
                               reference_unet_groups)

from mmseg_rass.models import diffusion  # noqa: E402

TINY_CONFIG = 'tests/configs/rass_mask2former_tiny.py'
SD21_HEAD = dict(in_channels=[512] * 4)
TINY_HEAD = dict(in_channels=[32] * 4, dim=32, enc_layers=1, enc_ffn=64, dec_layers=2,
                 dec_ffn=64, queries=8, classes=5, heads=4, points=2, proj_out=32)
DROPPED = {'SD VAE decoder', 'SD CLIP text encoder', 'RAM / DAPE taggers',
           'DiffJPEG of the online degradation',
           'no-object class weight'}


def _reference_state(arch, device, head, channels):
    """The authors' model state dict for ``arch``, and their segmentation-adapted UNet."""
    configs = diffusion.ARCHS[arch]
    with torch.device(device):
        unet = diffusion.build_unet(config=configs['unet'])
        vae = diffusion.build_vae(config=configs['vae'])
        text = CLIPTextModel(CLIPTextConfig(**configs['text_encoder']))
    add_reference_adapters(unet, reference_unet_groups(unet, with_conv_out=False), '_s2')
    if device != 'meta':
        with torch.no_grad():
            for name, param in unet.named_parameters():
                if 'lora_B' in name:
                    param.normal_(0, 0.05)
    return rass_detectron2_state(unet, vae, text, channels, head, device), unet


@pytest.fixture(scope='module')
def tool(repo_root):
    return runpy.run_path(osp.join(repo_root, 'tools', 'convert_rass_checkpoint.py'))


def test_sd21_checkpoint_maps_or_drops_every_tensor(tool, tmp_path):
    state, _ = _reference_state('sd21', 'meta', SD21_HEAD, [256, 512, 1280, 1280, 640, 320])
    src, out = tmp_path / 'rass.pth', tmp_path / 'rass_mmseg.pth'
    torch.save({'model': state, 'iteration': 159999}, src)
    # the tool checks: every tensor of the config's model (SD2.1 shapes) filled, shapes equal
    mapped, dropped = tool['main']([str(src), str(out)])
    assert {why.split(':')[0] for why in dropped} == DROPPED
    assert len(mapped) + sum(dropped.values()) == len(state)  # every source tensor accounted
    saved = torch.load(out, weights_only=True, map_location='meta')
    assert set(saved['state_dict']) == set(mapped)
    assert sum(1 for k in mapped if '.lora_' in k and '.seg.' in k) == \
        sum(1 for k in state if '_s2.' in k)
    assert dropped['no-object class weight: loss_cls.class_weight of the config'] == 1


def test_tiny_checkpoint_loads_and_reproduces_the_reference(tool, repo_root, tmp_path):
    from mmengine.config import Config
    from mmengine.runner.checkpoint import load_checkpoint
    from mmseg.registry import MODELS
    state, reference_unet = _reference_state('tiny', 'cpu', TINY_HEAD, [16, 16, 32, 32, 32, 16])
    src, out = tmp_path / 'rass_tiny.pth', tmp_path / 'rass_tiny_mmseg.pth'
    torch.save({'model': state}, src)
    tool['main']([str(src), str(out), '--config', osp.join(repo_root, TINY_CONFIG),
                  '--arch', 'tiny'])
    model = MODELS.build(Config.fromfile(osp.join(repo_root, TINY_CONFIG)).model)
    load_checkpoint(model, str(out), map_location='cpu', strict=True)
    d2 = 'backbone.feature_extractor.'
    for ours, theirs in (('decode_head.cls_embed.weight', 'sem_seg_head.predictor.class_embed.weight'),
                         ('decode_head.mask_embed.4.bias', 'sem_seg_head.predictor.mask_embed.layers.2.bias'),
                         ('decode_head.pixel_decoder.level_encoding.weight',
                          'sem_seg_head.pixel_decoder.transformer.level_embed'),
                         ('backbone.projections.5.body.2.gn.weight',
                          f'{d2}feature_projections.5.0.conv3.norm.weight'),
                         ('backbone.vae_encoder.conv_in.weight', f'{d2}sd.vae.encoder.conv_in.weight')):
        assert torch.equal(model.state_dict(keep_vars=True).get(ours, model.get_parameter(ours)),
                           state[theirs]), ours
    # the UNet (merged base + segmentation LoRA, scale 2) computes what the authors' UNet does
    latent, context = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            model.backbone.unet(latent, 1, encoder_hidden_states=context).sample,
            reference_unet(latent, 1, encoder_hidden_states=context).sample)


def test_unknown_or_unmerged_tensors_fail(tool, tmp_path):
    from mmseg_rass.converters import convert_rass_state_dict
    state = {'backbone.feature_extractor.sd.unet.conv_in.weight': torch.zeros(1),
             'backbone.feature_extractor.novel_module.weight': torch.zeros(1)}
    with pytest.raises(ValueError, match='1 tensors match no conversion rule.*novel_module'):
        convert_rass_state_dict(state)
    unmerged = {'backbone.feature_extractor.sd.unet.conv_in.lora_A.default_encoder.weight':
                torch.zeros(1)}
    with pytest.raises(ValueError, match='should be merged'):
        convert_rass_state_dict(unmerged)
    src = tmp_path / 'not_d2.pth'
    torch.save({'model': {'layer': [1, 2]}}, src)
    with pytest.raises(ValueError, match='no Detectron2 model state dict'):
        tool['main']([str(src), str(tmp_path / 'x.pth')])
