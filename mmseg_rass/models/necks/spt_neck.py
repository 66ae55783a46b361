"""SPT: SAM prior tuning units on a frozen segmentor's multi-level features."""
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ...sam.pooling import mask_average_pool


class SPTUnit(nn.Module):
    """One SPT unit: mask-pooled prior of the features → scale and shift of the features.

    prior = MAP(conv1x1(x), masks); (γ, β) = conv1x1(GELU(conv3x3(prior))) with the last
    conv zero-initialised; output = x · (1 + γ) + β, the identity at initialisation.

    Args:
        channels (int): C of the features.
        hidden_channels (int): channels of the prior branch.
        mask_drop (float): mask dropout probability in training.
    """

    def __init__(self, channels, hidden_channels, mask_drop):
        super().__init__()
        self.mask_drop = mask_drop
        self.proj = nn.Conv2d(channels, hidden_channels, 1)
        self.body = nn.Sequential(nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1),
                                  nn.GELU())
        self.to_scale_shift = nn.Conv2d(hidden_channels, 2 * channels, 1)
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x, masks):
        """Args: x (Tensor): (B, C, h, w); masks (Tensor): (B, K, H, W). Returns (B, C, h, w)."""
        prior = mask_average_pool(self.proj(x), masks, self.mask_drop, self.training)
        scale, shift = self.to_scale_shift(self.body(prior)).chunk(2, dim=1)
        return x * (1 + scale) + shift


@MODELS.register_module()
class SPTNeck(BaseModule):
    """SAM prior tuning (SPT) units, one per backbone output level.

    The units keep each level's shape and start as the identity, so inserting the neck into a
    pretrained segmentor leaves its predictions unchanged until the units train. Used with
    ``SAMPriorEncoderDecoder``, which passes the masks.

    Args:
        in_channels (list[int]): channels of each backbone output.
        hidden_channels (int): channels of each unit's prior branch.
        mask_drop (float): probability of dropping a SAM mask in training (0.5 drops half).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, in_channels, hidden_channels=32, mask_drop=0.5, init_cfg=None):
        super().__init__(init_cfg)
        self.units = nn.ModuleList(
            SPTUnit(c, hidden_channels, mask_drop) for c in in_channels)

    def init_weights(self):
        """Keep the zero initialisation of the scale/shift convs (identity at start)."""
        super().init_weights()
        for unit in self.units:
            nn.init.zeros_(unit.to_scale_shift.weight)
            nn.init.zeros_(unit.to_scale_shift.bias)

    def forward(self, inputs, masks):
        """Args:
            inputs (tuple[Tensor]): backbone outputs, level i of shape (B, C_i, h_i, w_i).
            masks (Tensor): (B, K, H, W) SAM masks at the input image's size.

        Returns:
            tuple[Tensor]: tuned features, same shapes as ``inputs``.
        """
        if len(inputs) != len(self.units):
            raise ValueError(f'SPTNeck has {len(self.units)} units but got {len(inputs)} '
                             'feature levels: set in_channels to the backbone out channels')
        return tuple(unit(x, masks) for unit, x in zip(self.units, inputs))
