"""tools/convert_rass_checkpoint.py: the authors' Detectron2 RASS + Mask2Former checkpoint → mmseg.

The source checkpoints come from ``rass_reference_layout.py``, which derives the released
``rass.pth`` key list from the reference code's rules (Ka1Guan/RASS, Detectron2), not from this
project's modules."""
import math
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from rass_reference_layout import FP, feature_dims, rass_checkpoint_state  # noqa: E402

from mmseg_rass.models import diffusion  # noqa: E402

TINY_CONFIG = 'tests/configs/rass_mask2former_tiny.py'
# the test config's head (tests/configs/rass_mask2former_tiny.py); the tiny SD sizes are the
# project's arch='tiny' (sizes only: the key rules stay the reference's)
TINY_HEAD = dict(proj_dim=32, dim=32, enc_layers=1, enc_ffn=64, dec_layers=2, dec_ffn=64,
                 queries=8, classes=5, heads=4, levels=3, points=2)
DROPPED = {'SD VAE decoder', 'SD CLIP text encoder', 'RAM / DAPE taggers',
           'DiffJPEG of the online degradation', 'no-object class weight'}


@pytest.fixture(scope='module')
def tool(tool_loader):
    return tool_loader('convert_rass_checkpoint')


def test_released_layout_converts_and_fills_the_model_exactly(tool, tmp_path):
    state, _ = rass_checkpoint_state()  # SD2.1-base, meta tensors
    shortcuts = {k.split('.')[3] for k in state if '.0.shortcut.' in k}
    assert shortcuts == {'0', '2', '3', '4', '5'}  # 512 -> 512 (VAE down block 3): none
    assert any('.lora_A.default_others_s2.' in k for k in state)
    src, out = tmp_path / 'rass.pth', tmp_path / 'rass_mmseg.pth'
    torch.save({'model': state, 'iteration': 159999}, src)
    # the tool checks: every tensor of the config's model (SD2.1 shapes) filled, shapes equal
    mapped, dropped = tool.main([str(src), str(out)])
    assert {why.split(':')[0] for why in dropped} == DROPPED
    assert len(mapped) + sum(dropped.values()) == len(state)  # every source tensor accounted
    saved = torch.load(out, weights_only=True, map_location='meta')
    assert set(saved['state_dict']) == set(mapped)
    assert sum(1 for k in mapped if '.lora_' in k and '.seg.' in k) == \
        sum(1 for k in state if '_s2.' in k)
    assert not any(k.startswith('backbone.projections.1.shortcut') for k in mapped)
    assert dropped['no-object class weight: loss_cls.class_weight of the config'] == 1


def _d2_bottleneck(state, prefix, x):
    """Detectron2 BottleneckBlock.forward (resnet.py l. 194-210) with the checkpoint's tensors;
    GroupNorm(32, C) there (at the tiny test widths: gcd(C, 32) groups)."""

    def conv_norm(name, y, padding=0):
        y = F.conv2d(y, state[f'{prefix}{name}.weight'], padding=padding)
        c = y.shape[1]
        return F.group_norm(y, math.gcd(c, 32), state[f'{prefix}{name}.norm.weight'],
                            state[f'{prefix}{name}.norm.bias'])

    out = F.relu(conv_norm('conv1', x))
    out = F.relu(conv_norm('conv2', out, padding=1))
    out = conv_norm('conv3', out)
    shortcut = conv_norm('shortcut', x) if f'{prefix}shortcut.weight' in state else x
    return F.relu(out + shortcut)


def test_tiny_checkpoint_loads_strictly_and_computes_as_the_reference(tool, repo_root, tmp_path):
    from mmengine.config import Config
    from mmengine.runner.checkpoint import load_checkpoint
    from mmseg.registry import MODELS
    sd = diffusion.ARCHS['tiny']
    state, reference_unet = rass_checkpoint_state(sd, TINY_HEAD, device='cpu')
    src, out = tmp_path / 'rass_tiny.pth', tmp_path / 'rass_tiny_mmseg.pth'
    torch.save({'model': state}, src)
    tool.main([str(src), str(out), '--config', osp.join(repo_root, TINY_CONFIG),
                  '--arch', 'tiny'])
    cfg = Config.fromfile(osp.join(repo_root, TINY_CONFIG))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(out), map_location='cpu', strict=True)
    for ours, theirs in (('decode_head.cls_embed.weight', 'sem_seg_head.predictor.class_embed.weight'),
                         ('decode_head.mask_embed.4.bias', 'sem_seg_head.predictor.mask_embed.layers.2.bias'),
                         ('decode_head.pixel_decoder.level_encoding.weight',
                          'sem_seg_head.pixel_decoder.transformer.level_embed'),
                         ('backbone.vae_encoder.conv_in.weight', f'{FP}sd.vae.encoder.conv_in.weight')):
        assert torch.equal(model.state_dict(keep_vars=True).get(ours, model.get_parameter(ours)),
                           state[theirs]), ours
    # each projection computes Detectron2's BottleneckBlock, identity shortcuts included
    dims = feature_dims(sd)
    assert [p.shortcut is None for p in model.backbone.projections] == [c == 32 for c in dims]
    with torch.no_grad():
        for i, (proj, channels) in enumerate(zip(model.backbone.projections, dims)):
            x = torch.randn(1, channels, 6, 5)
            torch.testing.assert_close(proj(x),
                                       _d2_bottleneck(state, f'{FP}feature_projections.{i}.0.', x))
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
        tool.main([str(src), str(tmp_path / 'x.pth')])
