"""SPF: shapes kept, the priors change the output, gradients reach every unit."""
import pytest
import torch

from mmseg_rass.models.necks import SPFNeck


def test_spf_neck_shapes_priors_and_gradients():
    torch.manual_seed(0)
    neck = SPFNeck([4, 8, 12], mask_drop=0.)
    feats = [torch.randn(2, c, 16 // 2 ** i, 24 // 2 ** i, requires_grad=True)
             for i, c in enumerate([4, 8, 12])]
    masks = (torch.rand(2, 5, 64, 96) > 0.5).float()
    outs = neck(feats, masks)
    assert [o.shape for o in outs] == [f.shape for f in feats]
    other = neck(feats, torch.zeros_like(masks))
    assert not torch.allclose(outs[0], other[0])
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in neck.parameters())
    with pytest.raises(ValueError, match='3 units but got 2'):
        neck(feats[:2], masks)
