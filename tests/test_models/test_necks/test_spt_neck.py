"""SPT: identity at initialisation; only the SPT units train on a frozen segmentor."""
import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

IN_CHANNELS = [8, 16, 24, 32]
BASE = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.] * 3, std=[1.] * 3),
    backbone=dict(type='MixVisionTransformer', in_channels=3, embed_dims=8, num_stages=4,
                  num_layers=[1, 1, 1, 1], num_heads=[1, 2, 3, 4], patch_sizes=[7, 3, 3, 3],
                  sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3), mlp_ratio=2),
    decode_head=dict(type='SegformerHead', in_channels=IN_CHANNELS, in_index=[0, 1, 2, 3],
                     channels=16, num_classes=5, norm_cfg=dict(type='BN', requires_grad=True),
                     align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    test_cfg=dict(mode='whole'))


def _samples(b=2, h=32, w=48, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(b):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, h, w), generator=g))
        s.gt_sam_masks = PixelData(data=(torch.rand(k, h, w, generator=g) > 0.6).to(torch.uint8))
        samples.append(s)
    return torch.randn(b, 3, h, w, generator=g), samples


def _spt(**kwargs):
    cfg = dict(copy.deepcopy(BASE), type='SAMPriorEncoderDecoder', trainable_modules=['neck'],
               neck=dict(type='SPTNeck', in_channels=IN_CHANNELS, hidden_channels=8))
    cfg.update(kwargs)
    return cfg


def test_spt_is_identity_at_init_whole_and_slide():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    base = MODELS.build(BASE).eval()
    spt = MODELS.build(_spt()).eval()
    spt.init_weights()
    spt.load_state_dict(base.state_dict(), strict=False)
    inputs, samples = _samples()
    with torch.no_grad():
        ref = base._forward(inputs)
        assert torch.allclose(spt._forward(inputs, samples), ref, atol=1e-6)
        base.test_cfg = spt.test_cfg = ConfigDict(mode='slide', crop_size=(32, 32),
                                                  stride=(16, 16))
        ref = base.predict(inputs, copy.deepcopy(samples))[0].seg_logits.data
        out = spt.predict(inputs, samples)[0].seg_logits.data
        assert torch.allclose(out, ref, atol=1e-5)


def test_only_spt_units_train_and_frozen_parts_stay_eval():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    spt = MODELS.build(_spt())
    spt.init_weights()
    spt.train()
    assert not spt.backbone.training and not spt.decode_head.training and spt.neck.training
    trainable = {n for n, p in spt.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('neck.') for n in trainable)
    before = {n: p.detach().clone() for n, p in spt.named_parameters()}
    opt = torch.optim.SGD([p for p in spt.parameters() if p.requires_grad], lr=0.1)
    inputs, samples = _samples()
    for _ in range(2):  # the 2nd step moves the layers behind the zero-initialised conv
        losses = spt.loss(inputs, samples)
        opt.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        opt.step()
    changed = {n for n, p in spt.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable
    assert any('to_scale_shift' in n for n in changed) and any('proj' in n for n in changed)


def test_spt_errors():
    init_default_scope('mmseg')
    inputs, samples = _samples()
    spt = MODELS.build(_spt())
    del samples[1].gt_sam_masks
    with pytest.raises(KeyError, match='LoadSAMPriors'):
        spt.loss(inputs, samples)
    with pytest.raises(ValueError, match='not submodules'):
        MODELS.build(_spt(trainable_modules=['nek']))
    with pytest.raises(ValueError, match='needs a prior-aware neck'):
        MODELS.build(dict(copy.deepcopy(BASE), type='SAMPriorEncoderDecoder'))
