"""Bottleneck projection that maps one diffusion feature map to the backbone's output width."""
import math

import torch.nn as nn
from mmcv.cnn import ConvModule


def group_norm_cfg(channels, max_groups=32):
    """GroupNorm config with the largest group count <= ``max_groups`` dividing ``channels``."""
    return dict(type='GN', num_groups=math.gcd(channels, max_groups), requires_grad=True)


class BottleneckProjection(nn.Module):
    """ResNet bottleneck with GroupNorm: 1x1 reduce, 3x3, 1x1 expand, plus a 1x1 shortcut.

    Args:
        in_channels (int): Channels C_in of the input (B, C_in, H, W).
        out_channels (int): Channels C_out of the output (B, C_out, H, W).
        mid_channels (int, optional): Bottleneck width; ``out_channels // 4`` if None.
    """

    def __init__(self, in_channels, out_channels, mid_channels=None):
        super().__init__()
        mid_channels = mid_channels or max(out_channels // 4, 1)
        act = dict(type='ReLU')
        self.body = nn.Sequential(
            ConvModule(in_channels, mid_channels, 1, norm_cfg=group_norm_cfg(mid_channels),
                       act_cfg=act),
            ConvModule(mid_channels, mid_channels, 3, padding=1,
                       norm_cfg=group_norm_cfg(mid_channels), act_cfg=act),
            ConvModule(mid_channels, out_channels, 1, norm_cfg=group_norm_cfg(out_channels),
                       act_cfg=None))
        self.shortcut = ConvModule(in_channels, out_channels, 1,
                                   norm_cfg=group_norm_cfg(out_channels), act_cfg=None)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        """Project (B, C_in, H, W) to (B, C_out, H, W)."""
        return self.act(self.body(x) + self.shortcut(x))
