"""SegSR: the bridge couples the branches, seeded sampling, GT never read at test, any size."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

NUM_CLASSES = 4


def segsr_cfg(**kwargs):
    """Config of a tiny SegSR (tiny random SD, 8-dim two-stage MiT), entries overridden."""
    cfg = dict(
        type='SegSR',
        srdm=dict(type='SRDM', arch='tiny', init_seed=0, finetune='lora', lora_rank=2),
        backbone=dict(type='MixVisionTransformer', in_channels=3, embed_dims=8, num_stages=2,
                      num_layers=[1, 1], num_heads=[1, 2], patch_sizes=[7, 3], strides=[4, 2],
                      sr_ratios=[4, 2],
                      out_indices=(0, 1), drop_path_rate=0.0),
        segdm=dict(type='SegDM', in_channels=[8, 16], channels=16, num_classes=NUM_CLASSES,
                   norm_cfg=dict(type='GN', num_groups=4),
                   decode_head=dict(type='FCNHead', channels=16, num_convs=1, concat_input=False,
                                    norm_cfg=dict(type='GN', num_groups=4), align_corners=False,
                                    loss_decode=dict(type='CrossEntropyLoss'))),
        bridge=dict(type='DualModalityBridge', img_cond_channels=8, seg_cond_channels=2,
                    mid_channels=8, norm_cfg=dict(type='GN', num_groups=4)),
        num_steps=2)
    for key, value in kwargs.items():
        merge = isinstance(value, dict) and isinstance(cfg.get(key), dict) and key != 'bridge'
        cfg[key] = dict(cfg[key], **value) if merge else value
    return cfg


def tiny_segsr(seed=0, **kwargs):
    """A tiny SegSR whose random parts (outside the seeded SD parts) come from ``seed``."""
    torch.manual_seed(seed)
    return MODELS.build(segsr_cfg(**kwargs))


def make_batch(n=2, height=64, width=64, ori_shape=None, seed=0, num_classes=NUM_CLASSES):
    """uint8 BGR LQ images + samples with gt_hq_img and gt_sem_seg (as the pipeline packs them)."""
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(height, width), ori_shape=ori_shape or (height, width)))
        gt_size = ori_shape or (height, width)
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, *gt_size), generator=gen))
        sample.gt_hq_img = PixelData(
            data=torch.randint(0, 256, (3, height, width), generator=gen, dtype=torch.uint8))
        samples.append(sample)
        inputs.append(torch.randint(0, 256, (3, height, width), generator=gen, dtype=torch.uint8))
    return dict(inputs=inputs, data_samples=samples)


def coupling_params(model):
    """The zero-initialised weights through which the bridge conditions enter the branches."""
    return [model.srdm.unet.conv_in.weight, model.segdm.cond_proj.weight]


def _grads(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [g for g in grads if g is not None and g.abs().sum() > 0]


def _branch_params(model):
    sr = [p for p in model.srdm.parameters() if p.requires_grad]
    seg = [p for m in (model.backbone, model.segdm) for p in m.parameters()]
    return sr, seg


@pytest.fixture(scope='module')
def models(one_torch_thread):
    """Bridge on and off, built from the same seeds: their shared weights are identical."""
    return tiny_segsr(), tiny_segsr(bridge=False)


def test_bridge_off_isolates_branches_and_bridge_on_couples_them(models):
    on, off = copy.deepcopy(models[0]).train(), models[1].train()
    data = off.data_preprocessor(make_batch(), True)
    torch.manual_seed(1)
    losses = off.loss(**data)
    assert 'init.loss_sr' not in losses and off.bridge is None
    sr, seg = _branch_params(off)
    assert not _grads(losses['loss_sr'], seg) and not _grads(losses['seg.loss_ce'], sr)
    assert _grads(losses['loss_sr'], sr) and _grads(losses['seg.loss_ce'], seg)

    # bridge on, as built: the coupling weights are zero, so no gradient crosses yet, but they
    # receive gradient themselves ...
    data = on.data_preprocessor(make_batch(), True)
    torch.manual_seed(1)
    losses = on.loss(**data)
    assert {'loss_sr', 'seg.loss_ce', 'init.loss_sr', 'init.seg.loss_ce'} <= set(losses)
    sr, seg = _branch_params(on)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert len(_grads(total, coupling_params(on))) == 2
    assert not _grads(losses['loss_sr'], seg)
    # ... and after one optimiser step every loss reaches both branches through the bridge
    optim = torch.optim.SGD([p for p in on.parameters() if p.requires_grad], lr=0.5)
    total.backward()
    optim.step()
    torch.manual_seed(1)
    losses = on.loss(**on.data_preprocessor(make_batch(), True))
    assert _grads(losses['loss_sr'], seg) and _grads(losses['seg.loss_ce'], sr)
    assert _grads(losses['loss_sr'], list(on.bridge.seg_encoder.parameters()))
    assert _grads(losses['seg.loss_ce'], list(on.bridge.img_encoder.parameters()))


def test_bridge_changes_outputs_and_zero_coupling_equals_no_bridge(models):
    on, off = copy.deepcopy(models[0]).eval(), models[1].eval()
    data = make_batch(n=1)
    same_on, same_off = on.test_step(copy.deepcopy(data))[0], off.test_step(copy.deepcopy(data))[0]
    # zero-initialised coupling: the untrained bridged model is exactly the unbridged one
    assert torch.equal(same_on.pred_img.data, same_off.pred_img.data)
    assert torch.allclose(same_on.seg_logits.data, same_off.seg_logits.data, atol=1e-5)
    with torch.no_grad():
        for param in coupling_params(on):
            param.normal_(0, 0.5)
    changed = on.test_step(copy.deepcopy(data))[0]
    assert not torch.equal(changed.pred_img.data, same_off.pred_img.data)
    assert not torch.allclose(changed.seg_logits.data, same_off.seg_logits.data, atol=1e-3)


def test_seeded_sampling_is_deterministic_and_batch_independent(models):
    model = models[0].eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    a, b = model.sample(x), model.sample(x.clone())
    assert torch.equal(a['restored'], b['restored']) and torch.equal(a['seg_logits'],
                                                                      b['seg_logits'])
    alone = model.sample(x[1:])
    torch.testing.assert_close(alone['restored'], a['restored'][1:], atol=1e-4, rtol=1e-4)
    model.sample_seed = 1
    try:
        assert not torch.allclose(model.sample(x)['restored'], a['restored'])
    finally:
        model.sample_seed = 0
    steps = model.sample(x, num_steps=3, return_steps=True)['steps']
    assert [s['timestep'] for s in steps] == [999, 666, 332]  # DDIM, trailing spacing
    assert steps[-1]['seg_logits'].shape == (2, NUM_CLASSES, 64, 64)


def test_ground_truth_is_never_read_at_test(models):
    model = models[0].eval()
    data = make_batch(n=1, height=64, width=96)
    with_gt = model.test_step(copy.deepcopy(data))[0]
    for sample in data['data_samples']:  # remove every label and the HQ image
        del sample.gt_sem_seg
        del sample.gt_hq_img
    without = model.test_step(data)[0]
    assert 'gt_sem_seg' not in without and 'gt_hq_img' not in without
    assert torch.equal(with_gt.pred_sem_seg.data, without.pred_sem_seg.data)
    assert torch.equal(with_gt.pred_img.data, without.pred_img.data)
    # the HQ image only becomes uint8 RGB for RestorationMetric
    assert with_gt.gt_hq_img.data.dtype == torch.uint8
    assert torch.equal(with_gt.gt_hq_img.data, make_batch(1, 64, 96)['data_samples'][0]
                       .gt_hq_img.data.flip(0))


def test_odd_sizes_train_and_predict(models):
    model = models[0]
    model.train()
    data = model.data_preprocessor(make_batch(n=2, height=70, width=90), True)
    losses = model.loss(**data)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    out = model.test_step(make_batch(n=1, height=61, width=93, ori_shape=(122, 186)))[0]
    assert out.pred_sem_seg.data.shape == (1, 122, 186)  # mmseg: at ori_shape
    assert out.pred_img.data.shape == (3, 61, 93) and out.pred_img.data.dtype == torch.uint8
    assert out.lq_img.data.shape == (3, 61, 93)
    seg_logits, restored = model(torch.rand(1, 3, 61, 93) * 2 - 1, mode='tensor')
    assert seg_logits.shape == (1, NUM_CLASSES, 61, 93) and restored.shape == (1, 3, 61, 93)


def test_missing_sd_folder_and_wrong_num_classes_are_clear_errors(models, tmp_path):
    with pytest.raises(FileNotFoundError, match='no_sd/scheduler not found.*huggingface-cli'):
        tiny_segsr(srdm=dict(arch=None, pretrained_model_path=str(tmp_path / 'no_sd')))
    model = models[0].train()
    data = model.data_preprocessor(make_batch(num_classes=NUM_CLASSES + 3), True)
    with pytest.raises(ValueError, match=f'num_classes={NUM_CLASSES} .*model.segdm.num_classes'):
        model.loss(**data)
    with pytest.raises(ValueError, match="test_cfg.mode='slide' is not supported"):
        tiny_segsr(test_cfg=dict(mode='slide'))
    with pytest.raises(ValueError, match='bridge.num_classes=19 conflicts with 4'):
        tiny_segsr(bridge=dict(type='DualModalityBridge', num_classes=19))


def test_restore_then_segment_with_segsr_as_restorer(repo_root, tmp_path, one_torch_thread):
    """The shipped R2S config: SegSR's restored image goes to an mmseg segmentor."""
    cfg = Config.fromfile(osp.join(repo_root, 'configs/segsr/segsr_r2s_demo.py'))
    torch.manual_seed(0)
    trained = MODELS.build(cfg.segsr_model)  # the demo SegSR, "trained"
    with torch.no_grad():
        for param in coupling_params(trained):
            param.normal_(0, 0.5)
    cfg.model.restorer_checkpoint = str(tmp_path / 'segsr.pth')
    torch.save(dict(state_dict=trained.state_dict(), meta={}), cfg.model.restorer_checkpoint)
    r2s = MODELS.build(cfg.model).eval()
    loaded = dict(r2s.restorer.named_parameters())
    for name, value in trained.named_parameters():
        assert torch.equal(value, loaded[name]), name
    img = torch.randint(0, 256, (3, 60, 100), dtype=torch.uint8)
    sample = SegDataSample(metainfo=dict(img_shape=(60, 100), ori_shape=(60, 100)))
    out = r2s.test_step(dict(inputs=[img], data_samples=[sample]))[0]
    assert out.pred_sem_seg.data.shape == (1, 60, 100)
    lq = torch.nn.functional.pad((img.flip(0).float() / 127.5 - 1)[None], (0, 4, 0, 4))
    expected = trained.eval().sample(lq)['restored']
    torch.testing.assert_close(r2s(lq, mode='tensor'), expected)
    # strict: a restorer checkpoint lacking a part is one error, not a silently random part
    broken = {k: v for k, v in trained.state_dict().items() if not k.startswith('segdm.')}
    torch.save(dict(state_dict=broken, meta={}), cfg.model.restorer_checkpoint)
    with pytest.raises(RuntimeError, match='missing keys.*segdm'):
        MODELS.build(cfg.model)


def sr_batch(n=2, height=16, width=24, scale=4, seed=0):
    """LQ inputs with HQ images and labels ``scale`` times larger (a x4 training batch)."""
    gen = torch.Generator().manual_seed(seed)
    data = make_batch(n, height, width, seed=seed)
    for sample in data['data_samples']:
        size = (scale * height, scale * width)
        sample.set_metainfo(dict(ori_shape=size))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, NUM_CLASSES, (1, *size),
                                                         generator=gen))
        sample.gt_hq_img = PixelData(data=torch.randint(0, 256, (3, *size), generator=gen,
                                                        dtype=torch.uint8))
    return data


def test_x4_is_the_x1_model_on_the_bicubic_input(models):
    """scale=4: the LQ image is upsampled bicubically (a = -0.75) first, then everything runs
    as at x1 on it; outputs are exactly 4x the input."""
    from mmseg_rass.models.segmentors.segsr import upscale_bicubic
    x1 = models[0].eval()
    x4 = tiny_segsr(scale=4).eval()  # same seeds: the same weights
    lq = torch.rand(1, 3, 16, 20) * 2 - 1
    up = torch.nn.functional.interpolate(lq, scale_factor=4, mode='bicubic', align_corners=False)
    assert torch.equal(upscale_bicubic(lq, 4), up)
    out4, out1 = x4.sample(lq), x1.sample(up.clamp(-1, 1))
    assert out4['restored'].shape == (1, 3, 64, 80)
    assert torch.equal(out4['restored'], out1['restored'])
    assert torch.equal(out4['seg_logits'], out1['seg_logits'])
    # predict: an LQ file (ori_shape == img_shape) is segmented at 4x; a pipeline-degraded HQ
    # image (ori_shape = the HQ size) at its ori_shape
    data = make_batch(n=1, height=16, width=20)
    result = x4.test_step(copy.deepcopy(data))[0]
    assert result.pred_img.data.shape == (3, 64, 80) and result.lq_img.data.shape == (3, 16, 20)
    assert result.pred_sem_seg.data.shape == (1, 64, 80)
    result = x4.test_step(make_batch(n=1, height=16, width=20, ori_shape=(66, 82)))[0]
    assert result.pred_sem_seg.data.shape == (1, 66, 82)
    with pytest.raises(ValueError, match='scale must be a positive integer'):
        tiny_segsr(scale=2.5)


def test_x4_training_pads_hq_and_labels_to_scale_times_the_lq_batch(models):
    x4 = tiny_segsr(scale=4).train()
    preprocessor = x4.data_preprocessor
    data = sr_batch(n=2, height=14, width=24)
    labels = [s.gt_sem_seg.data.clone() for s in data['data_samples']]
    out = preprocessor(copy.deepcopy(data), True)
    assert out['inputs'].shape == (2, 3, 16, 24)  # LQ padded to the multiple of 8
    for sample, label in zip(out['data_samples'], labels):
        assert sample.gt_hq_img.data.shape == (3, 64, 96)
        assert sample.gt_sem_seg.data.shape == (1, 64, 96)
        assert torch.equal(sample.gt_sem_seg.data[:, :56], label)
        assert (sample.gt_sem_seg.data[:, 56:] == 255).all()  # padded rows are ignored
    losses = x4.loss(**out)
    assert all(torch.isfinite(v) for v in losses.values()) and 'loss_sr' in losses
    # an HQ image that is not an integer multiple of the LQ input is one clear error
    bad = sr_batch(n=1, height=14, width=24)
    bad['data_samples'][0].gt_hq_img = PixelData(data=torch.zeros(3, 50, 96, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r'HQ image of .* is \(50, 96\), the LQ input is '
                                         r'\(14, 24\)'):
        preprocessor(bad, True)
    # a x1 model given x4 pairs says so
    with pytest.raises(ValueError, match='is not scale=1 x the LQ batch'):
        models[1].train().loss(**preprocessor(sr_batch(n=1), True))
