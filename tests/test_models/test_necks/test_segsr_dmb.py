"""DualModalityBridge alone: condition shapes and sizes, scale-free image encoder, gradients."""
import torch
from mmseg.registry import MODELS


def test_conditions_have_the_receiving_branch_size_and_ignore_latent_scale():
    torch.manual_seed(0)
    dmb = MODELS.build(dict(type='DualModalityBridge', num_classes=5, img_cond_channels=6,
                            seg_cond_channels=3, mid_channels=8,
                            norm_cfg=dict(type='GN', num_groups=4)))
    latent0 = torch.randn(2, 4, 8, 12)
    image_cond = dmb.image_condition(latent0, (16, 24))  # SegDM features: stride 4
    assert image_cond.shape == (2, 6, 16, 24)
    # ẑ0 = (z_t - √(1-ᾱ)ε)/√ᾱ is ~15x larger at t = 999: the encoder does not care
    torch.testing.assert_close(dmb.image_condition(15 * latent0, (16, 24)), image_cond,
                               atol=1e-4, rtol=1e-3)
    probs = torch.randn(2, 5, 16, 24).softmax(dim=1).requires_grad_()
    seg_cond = dmb.segmentation_condition(probs, (8, 12))  # SRDM latent: stride 8
    assert seg_cond.shape == (2, 3, 8, 12)
    seg_cond.sum().backward()
    assert probs.grad.abs().sum() > 0  # the SRDM loss can reach SegDM through it
