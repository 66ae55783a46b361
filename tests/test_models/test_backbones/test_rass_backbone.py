"""RASSBackbone: shapes/strides, trainable set, SCR LoRA merge, checkpoints, options, mixing."""
import copy
import functools
import io
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import get_state_dict, load_state_dict
from mmseg.registry import MODELS

from mmseg_rass.lora import load_scr_lora_into, make_lora_config, merge_scr_lora, save_scr_lora
from mmseg_rass.models.backbones import RASSBackbone
from mmseg_rass.models.backbones.rass_backbone import square_windows
from mmseg_rass.models.diffusion import TINY_UNET_CONFIG, build_unet

init_default_scope('mmseg')


def tiny(**kwargs):
    cfg = dict(arch='tiny', out_channels=16, class_names=['road', 'car', 'sky'],
               prompt=dict(type='class_names', pooled=True))
    cfg.update(kwargs)
    return RASSBackbone(**cfg)


@functools.lru_cache(maxsize=None)
def _shared():
    torch.manual_seed(0)
    return tiny()


@pytest.fixture
def backbone():
    return copy.deepcopy(_shared())


def _is_trainable_name(name):
    return '.lora_' in name or name.startswith('unet.conv_in.') or name.startswith('projections.')


@pytest.fixture(scope='module')
def scr_lora_file(tmp_path_factory):
    """An SCR LoRA file from a tiny SCR UNet with non-zero (trained-like) LoRA and conv_in."""
    torch.manual_seed(1)
    unet = build_unet(config=TINY_UNET_CONFIG)
    lora_config = make_lora_config(rank=4)
    unet.add_adapter(lora_config)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if 'lora_B' in name or name.startswith('conv_in.'):
                p.normal_(0, 0.05)
    path = tmp_path_factory.mktemp('scr') / 'scr_lora.safetensors'
    save_scr_lora(str(path), unet, lora_config)
    return str(path)


def test_tiny_feature_shapes_and_strides(backbone):
    assert backbone.feature_strides == (4, 8, 32, 16, 8, 8)
    assert backbone.out_strides == (4, 8, 16, 32)
    outs = backbone(torch.randn(2, 3, 64, 128))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 32), (2, 16, 8, 16), (2, 16, 4, 8),
                                               (2, 16, 2, 4)]
    # Not a multiple of 64: padded inside, features cropped to ceil(H / s).
    outs = backbone(torch.randn(1, 3, 50, 70))
    assert [tuple(o.shape[-2:]) for o in outs] == [(13, 18), (7, 9), (4, 5), (2, 3)]
    assert all(o.dtype == torch.float32 for o in outs)


def test_sd21_feature_shapes_on_meta_device():
    with torch.device('meta'):
        bb = RASSBackbone(arch='sd21', class_names='CityscapesDataset',
                          prompt=dict(type='class_names', pooled=True))
        outs = bb(torch.empty(1, 3, 512, 1024))
    assert bb.feature_strides == (4, 8, 32, 16, 8, 8)
    assert [p.body[0].conv.in_channels for p in bb.projections] == [256, 512, 1280, 1280, 640, 320]
    # Detectron2's BottleneckBlock: no shortcut conv for the 512 -> 512 VAE feature
    assert [p.shortcut is None for p in bb.projections] == [False, True, False, False, False, False]
    assert bb.text_embeds.shape == (1, 19, 1024)
    assert [tuple(o.shape) for o in outs] == [(1, 512, 128, 256), (1, 512, 64, 128),
                                               (1, 512, 32, 64), (1, 512, 16, 32)]
    total = sum(p.numel() for p in bb.parameters())
    trainable = sum(p.numel() for p in bb.parameters() if p.requires_grad)
    assert trainable / total <= 0.01
    lora = sum(p.numel() for n, p in bb.named_parameters() if '.lora_' in n)
    assert abs(lora - 4.04e6) < 0.01e6


# (H, W) -> windows (y1, y2, x1, x2), computed by hand from the reference's rule: side = shorter
# side, stride = side, ceil(H / side) x ceil(W / side) windows, the last one ending at the border
WINDOWS = {
    (512, 512): [(0, 512, 0, 512)],  # square: the whole image
    (512, 688): [(0, 512, 0, 512), (0, 512, 176, 688)],  # ADE 683 wide, padded to /8
    (688, 512): [(0, 512, 0, 512), (176, 688, 0, 512)],  # portrait
    (1200, 512): [(0, 512, 0, 512), (512, 1024, 0, 512), (688, 1200, 0, 512)],
    (512, 2048): [(0, 512, 0, 512), (0, 512, 512, 1024), (0, 512, 1024, 1536),
                  (0, 512, 1536, 2048)],  # exact multiple: nothing snapped
    (200, 328): [(0, 200, 0, 200), (0, 200, 128, 328)],  # sides not multiples of 64
    (400, 2048): [(0, 400, 0, 400), (0, 400, 400, 800), (0, 400, 800, 1200),
                  (0, 400, 1200, 1600), (0, 400, 1600, 2000), (0, 400, 1648, 2048)],  # capped
}


@pytest.mark.parametrize('shape', list(WINDOWS))
def test_square_windows_match_the_hand_computed_layout(shape):
    assert square_windows(*shape) == WINDOWS[shape]


def test_slide_inference_averages_window_features(backbone):
    """Window k returns value[k] in channel 0 and its own column / row index at the stride in
    channels 1 / 2: the expected maps show where each window lands (floor(x1 / s)) and the mean."""
    values = iter([1.0, 3.0, 5.0])

    def fake_window(crop):
        v = next(values)
        feats = []
        for s in backbone.out_strides:
            f = crop.new_zeros(crop.shape[0], 16, crop.shape[2] // s, crop.shape[3] // s)
            f[:, 0] = v
            f[:, 1] = torch.arange(f.shape[-1])  # column in the window
            f[:, 2] = torch.arange(f.shape[-2])[:, None]  # row in the window
            feats.append(f)
        return tuple(feats)

    backbone.slide_inference = True
    backbone._forward_whole = fake_window
    backbone.eval()
    outs = backbone(torch.zeros(2, 3, 32, 44))  # windows x in [0, 32) and [12, 44)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 8, 11), (2, 16, 4, 5), (2, 16, 2, 2),
                                               (2, 16, 1, 1)]
    expected = {  # stride: (channel 0 per column, channel 1 per column)
        4: ([1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3], [0, 1, 2, 1.5, 2.5, 3.5, 4.5, 5.5, 5, 6, 7]),
        8: ([1, 2, 2, 2, 3], [0, 0.5, 1.5, 2.5, 3]),  # window 2 at 12 // 8 = 1
        16: ([2, 2], [0, 1]), 32: ([2], [0])}
    for out, s in zip(outs, backbone.out_strides):
        for c in (0, 1):
            torch.testing.assert_close(out[:, c], torch.tensor(expected[s][c], dtype=torch.float32).expand_as(out[:, c]))
    values = iter([1.0, 3.0, 5.0])
    outs = backbone(torch.zeros(1, 3, 80, 32))  # portrait, 3 windows: y1 = 0, 32, 48
    torch.testing.assert_close(outs[1][0, 0, :, 0],
                               torch.tensor([1, 1, 1, 1, 3, 3, 4, 4, 5, 5.]))
    torch.testing.assert_close(outs[1][0, 2, :, 0],
                               torch.tensor([0, 1, 2, 3, 0, 1, 1, 2, 2, 3.]))


def test_slide_inference_is_whole_image_inference_on_a_square_image(backbone):
    x = torch.randn(1, 3, 64, 64)
    backbone.eval()
    with torch.no_grad():
        whole = backbone(x)
        backbone.slide_inference = True
        slide = backbone(x)
        assert all(torch.equal(a, b) for a, b in zip(whole, slide))
        landscape = backbone(torch.randn(1, 3, 64, 100))  # 2 windows, features H // s x W // s
        assert [tuple(o.shape[-2:]) for o in landscape] == [(16, 25), (8, 12), (4, 6), (2, 3)]
    backbone.train()  # training runs the whole input, as the reference's single_forward
    assert [tuple(o.shape[-2:]) for o in backbone(torch.randn(1, 3, 64, 100))] == \
        [(16, 25), (8, 13), (4, 7), (2, 4)]


def test_text_conditioning(backbone):
    assert backbone.text_embeds.shape == (1, 3, 32)  # one pooled embedding per class
    empty = tiny(class_names=None, prompt='empty')
    assert empty.text_embeds.shape == (1, 77, 32)  # empty prompt, all tokens
    assert not hasattr(backbone, 'text_encoder')
    assert 'text_embeds' not in backbone.state_dict()
    with pytest.raises(ValueError, match='NoSuchDataset'):
        tiny(class_names='NoSuchDataset')


def test_only_intended_parameters_train(backbone):
    for name, p in backbone.named_parameters():
        assert p.requires_grad == _is_trainable_name(name), name
    backbone.train()
    assert not backbone.unet.training and not backbone.vae_encoder.training
    assert backbone.projections.training
    # 64 x 128: the UNet bottom has 2 tokens (with 1, self-attention queries get no gradient).
    outs = backbone(torch.randn(2, 3, 64, 128))
    sum((o ** 2).mean() for o in outs).backward()
    for name, p in backbone.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
            if 'lora_A' not in name:  # lora_A's gradient is 0 while lora_B is 0 (peft init)
                assert p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_scr_lora_merge_matches_unmerged_adapter(scr_lora_file, backbone):
    from mmseg_rass.lora import load_scr_lora
    torch.manual_seed(0)
    base = build_unet(config=TINY_UNET_CONFIG)
    merged = merge_scr_lora(copy.deepcopy(base), scr_lora_file)
    unmerged = load_scr_lora_into(copy.deepcopy(base), load_scr_lora(scr_lora_file))
    latent, ctx = torch.randn(2, 4, 8, 16), torch.randn(2, 5, 32)
    with torch.no_grad():
        a = merged(latent, 1, encoder_hidden_states=ctx).sample
        b = unmerged(latent, 1, encoder_hidden_states=ctx).sample
        c = base(latent, 1, encoder_hidden_states=ctx).sample
    assert (a - b).abs().max() < 1e-5
    assert (a - c).abs().max() > 1e-3  # the file changes the model

    # The backbone merges the same file into the same (seeded) base UNet.
    bb = tiny(scr_lora=scr_lora_file)
    ref = merge_scr_lora(_seeded_tiny_unet(), scr_lora_file)
    assert torch.equal(bb.unet.conv_in.weight, ref.conv_in.weight)
    q = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q'
    assert torch.equal(bb.unet.get_submodule(q).base_layer.weight, ref.get_submodule(q).weight)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(bb(x)[3], backbone(x)[3])


def _seeded_tiny_unet():
    """The UNet RASSBackbone(arch='tiny', init_seed=0) builds (first) before merging."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_unet(config=TINY_UNET_CONFIG)


def test_checkpoint_holds_only_trainable_part_and_reloads(backbone):
    with torch.no_grad():  # pretend training moved every trainable parameter
        for p in backbone.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)
    state = get_state_dict(backbone)  # what mmengine's CheckpointHook saves
    assert state and all(_is_trainable_name(k) for k in state)
    assert set(state) == {n for n, p in backbone.named_parameters() if p.requires_grad}
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=False)

    torch.manual_seed(123)  # other random projections: the checkpoint must overwrite them
    fresh = tiny()
    load_state_dict(fresh, state, strict=True)  # mmengine's loader: nothing missing
    fresh.load_state_dict(state, strict=True)  # torch's loader too
    x = torch.randn(1, 3, 64, 64)
    backbone.eval(), fresh.eval()  # evaluation: repeatable posterior noise
    with torch.no_grad():
        for a, b in zip(backbone(x), fresh(x)):
            assert torch.equal(a, b)


def test_checkpoint_of_the_earlier_projection_is_refused(backbone, tmp_path):
    """Projections now follow Detectron2's BottleneckBlock (identity shortcut when in == out):
    a checkpoint whose projection has a 1x1 shortcut there is refused, strict or not."""
    from mmengine.runner.checkpoint import load_checkpoint
    assert [p.shortcut is None for p in backbone.projections] == [True, True, False, False,
                                                                   False, True]  # 16 -> 16
    old = get_state_dict(backbone)
    old.update({'projections.0.shortcut.conv.weight': torch.zeros(16, 16, 1, 1),
                'projections.0.shortcut.gn.weight': torch.ones(16),
                'projections.0.shortcut.gn.bias': torch.zeros(16)})
    message = (r'^projections\.0\.shortcut\.\* is in the checkpoint, but this 16->16 projection '
               r'has an identity shortcut .*earlier mmseg_rass.*retrain it[^\n]*$')
    with pytest.raises(ValueError, match=message):
        backbone.load_state_dict(old, strict=True)
    torch.save(dict(state_dict=old), tmp_path / 'old.pth')
    with pytest.raises(ValueError, match=message):  # tools/test.py loads with strict=False
        load_checkpoint(backbone, str(tmp_path / 'old.pth'), map_location='cpu', strict=False)


def test_base_model_mismatch_is_logged(backbone, monkeypatch):
    from mmseg_rass.models import trainable_state
    logged = []
    monkeypatch.setattr(trainable_state, 'print_log', lambda msg, **kw: logged.append(msg))
    state = get_state_dict(backbone)
    assert state._metadata['']['base_model'] == dict(
        pretrained_model_path=None, scr_lora=None, arch='tiny', init_seed=0)
    state._metadata['']['base_model'] = dict(backbone.base_model, init_seed=7)
    backbone.load_state_dict(state)
    assert len(logged) == 1 and "'init_seed': 7}, this model is built on" in logged[0]


def test_gradient_checkpointing_gives_same_gradients(backbone):
    ckpt = copy.deepcopy(backbone)
    ckpt.unet.enable_gradient_checkpointing()
    with torch.no_grad():
        for name, p in backbone.unet.named_parameters():
            if 'lora_B' in name:
                p.normal_(0, 0.1)
                ckpt.unet.get_parameter(name).copy_(p)
    x = torch.randn(1, 3, 64, 64)
    for m in (backbone, ckpt):
        torch.manual_seed(0)  # same posterior sample for both
        sum(o.sum() for o in m(x)).backward()
    name = 'unet.down_blocks.0.attentions.0.proj_in.lora_A.seg.weight'
    g1, g2 = backbone.get_parameter(name).grad, ckpt.get_parameter(name).grad
    assert g1.abs().sum() > 0 and torch.allclose(g1, g2, atol=1e-5)


def test_bfloat16_storage_and_compute():
    bb = tiny(dtype='bfloat16')
    dtypes = {n: p.dtype for n, p in bb.named_parameters()}
    assert all((d == torch.float32) == _is_trainable_name(n) for n, d in dtypes.items())
    outs = bb(torch.randn(1, 3, 64, 64))
    assert all(o.dtype == torch.float32 and torch.isfinite(o).all() for o in outs)
    sum(o.sum() for o in outs).backward()
    assert bb.unet.conv_in.weight.grad is not None


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'no_sd[/\\]unet.*huggingface-cli download'):
        RASSBackbone(pretrained_model_path=str(tmp_path / 'no_sd'))
    with pytest.raises(FileNotFoundError, match='SCR LoRA file .*missing.safetensors'):
        tiny(scr_lora=str(tmp_path / 'missing.safetensors'))
    with pytest.raises(ValueError, match='exactly one of'):
        RASSBackbone(pretrained_model_path='x', arch='tiny')
    with pytest.raises(ValueError, match='`arch` must be one of'):
        RASSBackbone(arch='huge')
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'not a safetensors file')
    with pytest.raises(ValueError, match='bad.safetensors'):
        tiny(scr_lora=str(bad))


def test_optim_constructor_skips_frozen_weights(caplog):
    from mmengine.optim import build_optim_wrapper
    model = torch.nn.ModuleDict(dict(backbone=_shared(), head=torch.nn.Conv2d(16, 3, 1)))
    cfg = dict(constructor='RASSOptimWrapperConstructor',
               optimizer=dict(type='AdamW', lr=1e-4),
               paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1),
                                               'backbone.projections': dict(lr_mult=1.0)}))
    wrapper = build_optim_wrapper(model, cfg)
    groups = wrapper.optimizer.param_groups
    ids = {id(p): g['lr'] for g in groups for p in g['params']}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(ids) == len(trainable)
    assert ids[id(model.backbone.unet.conv_in.weight)] == pytest.approx(1e-5)
    assert ids[id(model.backbone.projections[0].body[0].conv.weight)] == pytest.approx(1e-4)
    assert ids[id(model.head.weight)] == pytest.approx(1e-4)


def test_docs_mixing_example_builds_and_trains_a_step(repo_root, tmp_path):
    """The block in docs/rass.md turns a model-zoo SegFormer config into a RASS model."""
    text = open(osp.join(repo_root, 'docs', 'rass.md'), encoding='utf-8').read()
    block = next(b for b in re.findall(r'```python\n(.*?)```', text, re.S) if 'segformer' in b)
    cfg_file = tmp_path / 'segformer_rass.py'
    cfg_file.write_text(block)
    cfg = Config.fromfile(str(cfg_file))
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs DDP
    cfg.model.data_preprocessor.size = (64, 128)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert isinstance(model.backbone, RASSBackbone)
    from mmengine.optim import OptimWrapper
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    optim = OptimWrapper(torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                           lr=1e-3))
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(64, 128), pad_shape=(64, 128)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, 64, 128)))
        samples.append(s)
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 128), dtype=torch.uint8)] * 2,
                data_samples=samples)
    before = model.backbone.projections[0].body[0].conv.weight.clone()
    losses = model.train_step(data, optim)
    assert torch.isfinite(losses['loss'])
    assert not torch.equal(before, model.backbone.projections[0].body[0].conv.weight)


def test_defaults_follow_the_authors_code(backbone):
    import inspect
    defaults = {k: v.default for k, v in inspect.signature(RASSBackbone).parameters.items()}
    assert defaults['timestep'] == 1 and defaults['sample_posterior'] is True
    assert (defaults['lora_rank'], defaults['lora_alpha']) == (4, 8)
    assert defaults['prompt'] == 'empty' and defaults['test_prompt'] is None
    # one adapter 'seg' over the authors' targets, conv_in included, scale 8 / 4 = 2
    assert backbone.unet.conv_in.scaling['seg'] == 2.0
    assert not hasattr(backbone.unet.conv_out, 'lora_A')
    x = torch.randn(1, 3, 64, 64)
    backbone.eval()
    with torch.no_grad():  # evaluation: the posterior noise is seeded, results repeat
        assert all(torch.equal(a, b) for a, b in zip(backbone(x), backbone(x)))
