"""SPF: semantic prior fusion units for the SAM-prior teacher of SPD distillation."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ...sam.pooling import mask_average_pool


class SPFUnit(nn.Module):
    """One SPF unit.

    prior = MAP(conv1x1(x), masks); fused = 2 × (conv3x3 + GroupNorm + GELU) on
    concat(x, prior) plus the previous level's fused features resized to this level;
    gate = sigmoid(conv1x1(concat(x, fused))) (selection attention);
    output = gate · fused + (1 − gate) · x.

    Args:
        channels (int): C of this level.
        prev_channels (int, optional): C of the previous level's fused features.
        mask_drop (float): mask dropout probability in training.
    """

    def __init__(self, channels, prev_channels, mask_drop):
        super().__init__()
        self.mask_drop = mask_drop
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 3, padding=1), nn.GroupNorm(groups, channels),
            nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels), nn.GELU())
        self.carry = nn.Conv2d(prev_channels, channels, 1) if prev_channels else None
        self.gate = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x, masks, prev=None):
        """Args:
            x (Tensor): (B, C, h, w) features.
            masks (Tensor): (B, K, H, W) SAM masks.
            prev (Tensor, optional): previous level's fused features (B, C', h', w').

        Returns:
            tuple[Tensor, Tensor]: output (B, C, h, w) and fused features (B, C, h, w).
        """
        prior = mask_average_pool(self.proj(x), masks, self.mask_drop, self.training)
        fused = self.fuse(torch.cat([x, prior], dim=1))
        if self.carry is not None and prev is not None:
            fused = fused + self.carry(
                F.interpolate(prev, size=x.shape[-2:], mode='bilinear', align_corners=False))
        gate = torch.sigmoid(self.gate(torch.cat([x, fused], dim=1)))
        return gate * fused + (1 - gate) * x, fused


@MODELS.register_module()
class SPFNeck(BaseModule):
    """Semantic prior fusion (SPF) units, one per feature level, chained from fine to coarse.

    Fuses SAM priors into a segmentor's features; the teacher of ``SAMDistillHook`` uses it
    on the student's backbone features. Shapes are kept.

    Args:
        in_channels (list[int]): channels of each level, finest first.
        mask_drop (float): probability of dropping a SAM mask in training.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, in_channels, mask_drop=0.5, init_cfg=None):
        super().__init__(init_cfg)
        self.units = nn.ModuleList(
            SPFUnit(c, in_channels[i - 1] if i else None, mask_drop)
            for i, c in enumerate(in_channels))

    def forward(self, inputs, masks):
        """Args:
            inputs (tuple[Tensor]): level i of shape (B, C_i, h_i, w_i).
            masks (Tensor): (B, K, H, W) SAM masks at the input image's size.

        Returns:
            tuple[Tensor]: fused features, same shapes as ``inputs``.
        """
        if len(inputs) != len(self.units):
            raise ValueError(f'SPFNeck has {len(self.units)} units but got {len(inputs)} '
                             'feature levels: set in_channels to the backbone out channels')
        outs, prev = [], None
        for unit, x in zip(self.units, inputs):
            out, prev = unit(x, masks, prev)
            outs.append(out)
        return tuple(outs)
