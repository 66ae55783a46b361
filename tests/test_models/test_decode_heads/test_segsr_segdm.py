"""SegDM alone: DDP's schedule and map embedding, exact DDIM step, losses, errors."""
import math

import pytest
import torch
from mmseg.registry import MODELS

from mmseg_rass.models.decode_heads.segsr_segdm import alpha_sigma, cosine_log_snr

HEAD = dict(type='FCNHead', channels=16, num_convs=1, concat_input=False,
            norm_cfg=dict(type='BN'), align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))


def _segdm(**kwargs):
    cfg = dict(type='SegDM', in_channels=[8, 16], channels=16, num_classes=5, decode_head=HEAD,
               norm_cfg=dict(type='GN', num_groups=4))
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_cosine_log_snr_matches_the_formula():
    u = torch.tensor([0.0, 0.25, 0.5, 0.999])
    expected = [-math.log(max(math.cos((x + 2e-4) / (1 + 2.5e-4) * math.pi / 2)**-2 - 1, 1e-5))
                for x in u.tolist()]
    torch.testing.assert_close(cosine_log_snr(u), torch.tensor(expected), rtol=1e-5, atol=1e-4)
    alpha, sigma = alpha_sigma(cosine_log_snr(u))
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(4))
    assert alpha[0] > 0.9999 and alpha[-1] < 0.01 and (alpha[1:] < alpha[:-1]).all()


def test_labels_become_a_bounded_map_with_ignore_as_an_extra_class():
    model = _segdm(bit_scale=0.1)
    labels = torch.tensor([[[0, 4], [255, 255]]])
    m0 = model.encode_labels(labels, (2, 2))
    assert m0.shape == (1, 16, 2, 2) and m0.abs().max() <= 0.1
    table = (torch.sigmoid(model.embedding.weight) * 2 - 1) * 0.1
    torch.testing.assert_close(m0[0, :, 1, 0], table[5])  # ignore -> index num_classes
    torch.testing.assert_close(m0[0, :, 0, 1], table[4])
    # nearest downsampling keeps labels (no mixed classes)
    big = torch.zeros(1, 8, 8, dtype=torch.long)
    big[:, :, 4:] = 3
    torch.testing.assert_close(model.encode_labels(big, (2, 2))[0, :, 0, 1], table[3])


def test_ddim_step_with_a_correct_prediction_is_exact():
    model = _segdm()
    labels = torch.randint(0, 5, (2, 4, 4), generator=torch.Generator().manual_seed(1))
    m0 = model.encode_labels(labels, (4, 4))
    noise = torch.randn(m0.shape, generator=torch.Generator().manual_seed(2))
    now, nxt = 0.7, 0.3
    m_now = model.noise_map(m0, torch.full((2, ), now), noise)
    logits = torch.nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    m_next = model.ddim_step(m_now, logits, now, nxt)
    torch.testing.assert_close(m_next, model.noise_map(m0, torch.full((2, ), nxt), noise))


def test_forward_loss_and_standalone_sampling():
    model = _segdm(cond_channels=3)
    feats = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)]
    feat = model.fuse_features(feats)
    assert feat.shape == (2, 16, 8, 8)
    labels = torch.randint(0, 5, (2, 32, 32))
    labels[:, :4] = 255
    m0 = model.encode_labels(labels, (8, 8))
    m_t = model.noise_map(m0, torch.rand(2), torch.randn(2, 16, 8, 8))
    cond = torch.randn(2, 3, 8, 8)
    logits = model(feat, m_t, torch.rand(2), cond)
    assert logits.shape == (2, 5, 8, 8)
    losses = model.loss(logits, labels)
    assert torch.isfinite(losses['loss_ce']) and 'acc_seg' in losses
    losses['loss_ce'].backward()
    assert model.cond_proj.weight.grad.abs().sum() > 0  # zero weights, non-zero gradient
    model.eval()
    noise = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    a, b = model.sample(feat.detach(), 3, noise, cond), model.sample(feat.detach(), 3, noise, cond)
    assert torch.equal(a, b) and a.shape == (2, 5, 8, 8)
    assert [round(x, 3) for pair in model.sample_times(3) for x in pair] == [
        0.999, 0.666, 0.666, 0.333, 0.333, 0.0]


def test_wrong_num_classes_is_one_clear_error():
    model = _segdm()
    labels = torch.full((1, 8, 8), 7)
    with pytest.raises(ValueError, match=r'labels range over \[7, 7\] but num_classes=5.*'
                       r'model.segdm.num_classes'):
        model.encode_labels(labels, (2, 2))
    with pytest.raises(ValueError, match='decode_head.num_classes=19 but SegDM sets it to 5'):
        _segdm(decode_head=dict(HEAD, num_classes=19))
