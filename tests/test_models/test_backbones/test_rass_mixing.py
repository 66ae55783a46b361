"""RASSBackbone in mmseg configs: pretrained/init_cfg, output-level choice, zoo optimizers."""
import functools
import logging

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmseg_rass.models.backbones import RASSBackbone
from mmseg_rass.models.backbones import rass_backbone as rass_backbone_module

init_default_scope('mmseg')


@functools.lru_cache(maxsize=None)
def _tiny(**kwargs):
    torch.manual_seed(0)
    return RASSBackbone(arch='tiny', out_channels=16, **kwargs)


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_logged():
    handler = _Warnings()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_pretrained_and_init_cfg_are_ignored_with_one_line_each(monkeypatch):
    logged = []
    monkeypatch.setattr(rass_backbone_module, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw.get('level'))))
    bb = RASSBackbone(arch='tiny', out_channels=16, pretrained='open-mmlab://resnet50_v1c',
                      init_cfg=dict(type='Kaiming', layer='Conv2d'))
    assert [lvl for _, lvl in logged] == [logging.WARNING] * 2
    assert "ignoring pretrained='open-mmlab://resnet50_v1c'" in logged[0][0]
    assert "ignoring init_cfg={'type': 'Kaiming'" in logged[1][0]
    assert 'pretrained_model_path' in logged[0][0] and 'load_from' in logged[0][0]
    # A Kaiming init_cfg would have overwritten the frozen Stable Diffusion convolutions.
    bb.init_weights()
    ref = _tiny()
    for (name, p), q in zip(bb.unet.named_parameters(), ref.unet.parameters()):
        if not p.requires_grad:
            assert torch.equal(p, q), name


def test_segmentor_pretrained_reaches_the_backbone_and_is_ignored(monkeypatch):
    """mmseg's EncoderDecoder hands ``pretrained=`` of a model-zoo config to the backbone."""
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS
    logged = []
    monkeypatch.setattr(rass_backbone_module, 'print_log', lambda msg, **kw: logged.append(msg))
    model = MODELS.build(ConfigDict(
        type='EncoderDecoder', pretrained='open-mmlab://resnet50_v1c',
        backbone=dict(type='RASSBackbone', arch='tiny', out_channels=16,
                      out_strides=(8, 8, 8, 8)),
        decode_head=dict(type='PSPHead', in_channels=16, in_index=3, channels=8,
                         num_classes=3, norm_cfg=dict(type='BN', requires_grad=True))))
    assert len(logged) == 1 and 'pretrained' in logged[0]
    model.init_weights()
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 128), mode='tensor')
    assert out.shape == (1, 3, 8, 16)  # PSPHead on the stride-8 map, as on ResNet-d8


def test_out_strides_choose_the_map_of_each_level():
    bb = _tiny(out_strides=(4, 8, 8, 8))
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        outs = bb(x)
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 32), (8, 16), (8, 16), (8, 16)]
    assert outs[1].data_ptr() == outs[2].data_ptr() == outs[3].data_ptr()  # one map
    # only features of the listed strides are projected: VAE[1] s4, VAE[3] s8, UNet up 2, 3 s8
    assert bb.feature_strides == (4, 8, 8, 8) and len(bb.projections) == 4
    full = _tiny()  # projections of VAE[1], VAE[3], up[0], up[1], up[2], up[3]
    for i, j in enumerate((0, 1, 4, 5)):  # the same weights: the s4 and s8 maps are the same sums
        bb.projections[i].load_state_dict(full.projections[j].state_dict())
    bb.eval(), full.eval()  # evaluation: the VAE posterior sample is seeded, equal in both
    try:
        with torch.no_grad():
            outs, ref = bb(x), full(x)
    finally:
        bb.train(), full.train()
    assert torch.allclose(outs[0], ref[0], atol=1e-5) and torch.allclose(outs[3], ref[1],
                                                                          atol=1e-5)
    three = _tiny(out_strides=(8, 16, 32))
    assert three.out_strides == (8, 16, 32) and len(three.projections) == 5  # no VAE[1]
    assert _tiny().out_strides == (4, 8, 16, 32)
    with pytest.raises(ValueError, match=r'out_strides=\(4, 64\) must list strides of the '
                                         r'features, which are \[4, 8, 16, 32\]'):
        RASSBackbone(arch='tiny', out_channels=16, out_strides=(4, 64))


def _model():
    return torch.nn.ModuleDict(dict(backbone=_tiny(), decode_head=torch.nn.Conv2d(16, 3, 1)))


def _lr_of(wrapper):
    return {id(p): (g['lr'], g['weight_decay']) for g in wrapper.optimizer.param_groups
            for p in g['params']}


@pytest.mark.parametrize('paramwise', [
    dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6),  # ConvNeXt's recipe
    dict(num_layers=12, layer_decay_rate=0.9),  # BEiT's LayerDecayOptimizerConstructor
])
def test_layer_decay_over_the_rass_blocks(paramwise, warnings_logged):
    model = _model()
    cfg = dict(constructor='RASSOptimWrapperConstructor', paramwise_cfg=paramwise,
               optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    lrs = _lr_of(build_optim_wrapper(model, cfg))
    unet = model.backbone.unet
    depth = 2 + len(unet.down_blocks) + len(unet.up_blocks)  # conv_in, down, mid, up
    assert depth == 10
    assert set(lrs) == {id(p) for p in model.parameters() if p.requires_grad}
    assert lrs[id(unet.conv_in.weight)] == (pytest.approx(1e-3 * 0.9 ** 10), 0.05)
    assert lrs[id(unet.conv_in.bias)] == (pytest.approx(1e-3 * 0.9 ** 10), 0.0)
    down0 = next(p for n, p in unet.down_blocks[0].named_parameters() if 'lora_B' in n)
    mid = next(p for n, p in unet.mid_block.named_parameters() if 'lora_B' in n)
    up3 = next(p for n, p in unet.up_blocks[3].named_parameters() if 'lora_B' in n)
    assert lrs[id(down0)][0] == pytest.approx(1e-3 * 0.9 ** 9)
    assert lrs[id(mid)][0] == pytest.approx(1e-3 * 0.9 ** 5)
    assert lrs[id(up3)][0] == pytest.approx(1e-3 * 0.9)
    proj = model.backbone.projections[0].body[0].conv.weight
    assert lrs[id(proj)] == (pytest.approx(1e-3), 0.05)  # new layers: x1, like the head
    assert lrs[id(model.decode_head.weight)] == (pytest.approx(1e-3), 0.05)
    assert not warnings_logged


def test_default_paramwise_and_none_skip_frozen_weights_silently(warnings_logged):
    model = _model()
    cfg = dict(constructor='RASSOptimWrapperConstructor',
               optimizer=dict(type='AdamW', lr=6e-5, weight_decay=0.01),
               paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.),
                                               'head': dict(lr_mult=10.)}))  # SegFormer's
    lrs = _lr_of(build_optim_wrapper(model, cfg))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(lrs) == trainable and not warnings_logged
    assert lrs[id(model.decode_head.weight)][0] == pytest.approx(6e-4)
    # Without paramwise_cfg the default constructor would hand the frozen weights over too.
    cfg.pop('paramwise_cfg')
    wrapper = build_optim_wrapper(model, cfg)
    assert {id(p) for g in wrapper.optimizer.param_groups for p in g['params']} == trainable


def test_layer_decay_errors_and_other_backbones():
    with pytest.raises(ValueError, match='takes only decay_type and num_layers'):
        build_optim_wrapper(_model(), dict(
            constructor='RASSOptimWrapperConstructor', optimizer=dict(type='SGD', lr=0.1),
            paramwise_cfg=dict(decay_rate=0.9, custom_keys={'x': dict(lr_mult=0.1)})))
    with pytest.raises(ValueError, match='decay_rate needs optimizer.weight_decay'):
        build_optim_wrapper(_model(), dict(
            constructor='RASSOptimWrapperConstructor', optimizer=dict(type='SGD', lr=0.1),
            paramwise_cfg=dict(decay_rate=0.9)))

    class ConvNeXtStub(torch.nn.Module):  # mmseg's constructor decides by the class name
        def __init__(self):
            super().__init__()
            self.stages = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(4)])

    model = torch.nn.ModuleDict(dict(backbone=ConvNeXtStub(), decode_head=torch.nn.Linear(2, 2)))
    model.backbone.stages[0].requires_grad_(False)  # frozen: left out, no warning
    lrs = _lr_of(build_optim_wrapper(model, dict(
        constructor='RASSOptimWrapperConstructor', optimizer=dict(type='AdamW', lr=1.0,
                                                                  weight_decay=0.05),
        paramwise_cfg=dict(decay_rate=0.5, decay_type='stage_wise', num_layers=6))))
    assert id(model.backbone.stages[0].weight) not in lrs
    # mmseg's stage ids: stage i -> i + 1, scale 0.5 ** (8 - id - 1); the head gets 1
    assert lrs[id(model.backbone.stages[3].weight)][0] == pytest.approx(0.5 ** 3)
    assert lrs[id(model.decode_head.weight)][0] == pytest.approx(1.0)
