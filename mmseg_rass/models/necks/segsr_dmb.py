"""SegSR's Dual-Modality Bridge (DMB): each diffusion model's estimate → the other's condition."""
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmseg.registry import MODELS


def _encoder(in_channels, mid_channels, out_channels, norm_cfg):
    """3×3 conv → norm → SiLU → 3×3 conv → norm → SiLU → 1×1 conv."""
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
        build_norm_layer(norm_cfg, mid_channels)[1], nn.SiLU(),
        nn.Conv2d(mid_channels, mid_channels, 3, padding=1, bias=False),
        build_norm_layer(norm_cfg, mid_channels)[1], nn.SiLU(),
        nn.Conv2d(mid_channels, out_channels, 1))


@MODELS.register_module()
class DualModalityBridge(BaseModule):
    """Two light conv encoders run at every reverse step of SegSR.

    * image → segmentation: SRDM's clean-latent estimate ẑ0 (B, 4, h, w) → the image condition
      I_t of SegDM (B, img_cond_channels, *feature size), resized bilinearly after encoding;
    * segmentation → image: SegDM's class probabilities Ŝ (B, K, h', w') → the segmentation
      condition C_t of SRDM (B, seg_cond_channels, *latent size), resized bilinearly before
      encoding.

    The first layer's normalisation makes the image encoder indifferent to the scale of ẑ0,
    which is large at high noise levels (ε / √ᾱ_t).

    Args:
        num_classes (int): K, channels of the segmentation estimate.
        latent_channels (int): Channels of the SRDM latent. Default 4.
        img_cond_channels (int): Channels of I_t (SegDM condition). Default 32.
        seg_cond_channels (int): Channels of C_t (SRDM condition). Default 4.
        mid_channels (int): Hidden width of both encoders. Default 32.
        norm_cfg (dict): Norm layer config. Default GroupNorm, 8 groups.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 num_classes,
                 latent_channels=4,
                 img_cond_channels=32,
                 seg_cond_channels=4,
                 mid_channels=32,
                 norm_cfg=dict(type='GN', num_groups=8),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_classes = int(num_classes)
        self.latent_channels = int(latent_channels)
        self.img_cond_channels = int(img_cond_channels)
        self.seg_cond_channels = int(seg_cond_channels)
        self.img_encoder = _encoder(self.latent_channels, mid_channels, self.img_cond_channels,
                                    norm_cfg)
        self.seg_encoder = _encoder(self.num_classes, mid_channels, self.seg_cond_channels,
                                    norm_cfg)

    def image_condition(self, latent0, size):
        """I_t for SegDM.

        Args:
            latent0 (Tensor): SRDM's ẑ0 (B, latent_channels, h, w).
            size (tuple[int]): SegDM feature size (h', w').

        Returns:
            Tensor: (B, img_cond_channels, h', w').
        """
        out = self.img_encoder(latent0)
        if out.shape[-2:] != tuple(size):
            out = F.interpolate(out, size=size, mode='bilinear', align_corners=False)
        return out

    def segmentation_condition(self, seg_probs, size):
        """C_t for SRDM.

        Args:
            seg_probs (Tensor): SegDM's class probabilities (B, num_classes, h', w').
            size (tuple[int]): SRDM latent size (h, w).

        Returns:
            Tensor: (B, seg_cond_channels, h, w).
        """
        if seg_probs.shape[-2:] != tuple(size):
            seg_probs = F.interpolate(seg_probs, size=size, mode='bilinear', align_corners=False)
        return self.seg_encoder(seg_probs)
