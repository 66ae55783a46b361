"""Bottleneck projection that maps one diffusion feature map to the backbone's output width."""
import math

import torch.nn as nn
from mmcv.cnn import ConvModule


def group_norm_cfg(channels, max_groups=32):
    """GroupNorm config with the largest group count <= ``max_groups`` dividing ``channels``."""
    return dict(type='GN', num_groups=math.gcd(channels, max_groups), requires_grad=True)


class BottleneckProjection(nn.Module):
    """Detectron2's ``BottleneckBlock`` with GroupNorm and stride 1, as the RASS code projects
    each diffusion feature: 1x1 reduce, 3x3, 1x1 expand (convs without bias, each followed by
    GN), plus the shortcut — a 1x1 conv + GN when ``in_channels != out_channels``, the input
    itself otherwise — and a final ReLU.

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
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = ConvModule(in_channels, out_channels, 1,
                                       norm_cfg=group_norm_cfg(out_channels), act_cfg=None)
        self.act = nn.ReLU(inplace=True)
        self._register_load_state_dict_pre_hook(self._refuse_shortcut_weights)

    def _refuse_shortcut_weights(self, state_dict, prefix, *args):
        """A checkpoint with shortcut weights for an identity shortcut was made by the earlier
        projection (1x1 shortcut always): loading it would silently drop them."""
        if self.shortcut is None and any(k.startswith(prefix + 'shortcut.') for k in state_dict):
            channels = self.body[0].conv.in_channels
            raise ValueError(
                f'{prefix}shortcut.* is in the checkpoint, but this {channels}->{channels} '
                'projection has an identity shortcut (Detectron2\'s BottleneckBlock, as in the '
                'RASS authors\' model): the checkpoint was trained by an earlier mmseg_rass whose '
                'projections always had a 1x1 conv shortcut; retrain it, or evaluate it with '
                'the mmseg_rass version that trained it')

    def forward(self, x):
        """Project (B, C_in, H, W) to (B, C_out, H, W)."""
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.act(self.body(x) + identity)
