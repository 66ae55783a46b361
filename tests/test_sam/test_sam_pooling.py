"""Mask-average pooling against hand-computed values."""
import pytest
import torch

from mmseg_rass.sam import drop_masks, mask_average_pool, mask_pooled_descriptors


def _feats():
    # one channel, 2 x 3 pixels: values 1..6
    return torch.arange(1., 7.).view(1, 1, 2, 3)


def test_pool_disjoint_overlap_and_uncovered():
    masks = torch.zeros(1, 2, 2, 3)
    masks[0, 0, 0, :2] = 1  # {1, 2} -> mean 1.5
    masks[0, 1, 0, 1:] = 1  # {2, 3} -> mean 2.5, overlaps mask 0 at pixel value 2
    out = mask_average_pool(_feats(), masks)
    uncovered = (4 + 5 + 6) / 3  # second row: no mask
    expected = torch.tensor([[1.5, (1.5 + 2.5) / 2, 2.5], [uncovered] * 3]).view(1, 1, 2, 3)
    assert torch.allclose(out, expected)


def test_pool_full_cover_and_empty_slots():
    masks = torch.zeros(1, 3, 2, 3)
    masks[0, 0, 0] = 1
    masks[0, 1, 1] = 1  # slot 2 is empty (invalid): ignored
    out = mask_average_pool(_feats(), masks)
    expected = torch.tensor([[2.] * 3, [5.] * 3]).view(1, 1, 2, 3)
    assert torch.allclose(out, expected)


def test_pool_no_masks_gives_global_mean_and_multichannel():
    feats = torch.stack([_feats()[0, 0], -_feats()[0, 0]])[None]  # (1, 2, 2, 3)
    out = mask_average_pool(feats, torch.zeros(1, 0, 2, 3))
    assert torch.allclose(out[0, 0], torch.full((2, 3), 3.5))
    assert torch.allclose(out[0, 1], torch.full((2, 3), -3.5))


def test_pool_resizes_masks_by_area():
    # a mask at 2x resolution covering the left column exactly = the binary mask at 1x
    masks_hi = torch.zeros(1, 1, 4, 6)
    masks_hi[0, 0, :, :2] = 1
    masks_lo = torch.zeros(1, 1, 2, 3)
    masks_lo[0, 0, :, 0] = 1
    assert torch.allclose(mask_average_pool(_feats(), masks_hi),
                          mask_average_pool(_feats(), masks_lo))
    desc, area = mask_pooled_descriptors(_feats(), masks_lo)
    assert desc.item() == pytest.approx(2.5) and area.item() == 2


def test_mask_dropout():
    masks = torch.ones(2, 64, 1, 1)
    torch.manual_seed(0)
    kept = drop_masks(masks, 0.5).sum().item()
    assert 32 < kept < 96  # about half of 128
    feats = _feats()
    one = torch.zeros(1, 1, 2, 3)
    one[0, 0, 0, 0] = 1
    # dropout only in training
    assert torch.equal(mask_average_pool(feats, one, drop_prob=0.99, training=False),
                       mask_average_pool(feats, one))
    with pytest.raises(ValueError, match='drop_prob'):
        drop_masks(masks, 1.0)
    with pytest.raises(ValueError, match='same B'):
        mask_average_pool(feats, torch.zeros(2, 1, 2, 3))
