"""Mask-average pooling of feature maps over SAM masks (SAM-Deblur's MAP, as a function)."""
import torch
import torch.nn.functional as F


def resize_masks(masks, size):
    """Resize masks to a feature map's size by area averaging.

    Args:
        masks (Tensor): (B, K, H, W) masks, any dtype, values in [0, 1].
        size (tuple[int, int]): target (h, w).

    Returns:
        Tensor: (B, K, h, w) float masks; a value is the covered fraction of the cell.
    """
    masks = masks.float()
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks, size=size, mode='area')


def drop_masks(masks, drop_prob):
    """Zero each mask independently with probability ``drop_prob`` (training augmentation).

    Args:
        masks (Tensor): (B, K, H, W) masks.
        drop_prob (float): probability of dropping a mask, in [0, 1).

    Returns:
        Tensor: masks of the same shape with dropped masks set to zero.
    """
    if not 0 <= drop_prob < 1:
        raise ValueError(f'mask drop_prob must be in [0, 1), got {drop_prob}')
    keep = torch.rand(masks.shape[:2], device=masks.device) >= drop_prob
    return masks * keep[:, :, None, None].to(masks.dtype)


def mask_pooled_descriptors(feats, masks, eps=1e-6):
    """Mean feature of every mask region.

    Args:
        feats (Tensor): (B, C, h, w) features.
        masks (Tensor): (B, K, h, w) float masks already at the features' size (soft
            values weight the pixels).

    Returns:
        tuple[Tensor, Tensor]: descriptors (B, K, C) (zero for empty masks) and mask areas
        (B, K) in feature pixels.
    """
    area = masks.sum(dim=(2, 3))
    sums = torch.einsum('bkhw,bchw->bkc', masks.to(feats.dtype), feats)
    return sums / area.clamp_min(eps)[..., None].to(feats.dtype), area


def mask_average_pool(feats, masks, drop_prob=0., training=False, eps=1e-6):
    """Replace every pixel's feature by the mean feature of the SAM mask(s) covering it.

    A pixel covered by one mask gets that mask's mean; a pixel covered by several masks gets
    the average of their means (soft masks weight the means); pixels no mask covers get the
    mean of the uncovered region. With ``training=True`` each mask is dropped with
    probability ``drop_prob`` first (its pixels may then become uncovered).

    Args:
        feats (Tensor): (B, C, h, w) features.
        masks (Tensor): (B, K, H, W) binary or soft masks at any resolution (resized to
            (h, w) by area averaging); all-zero masks (invalid slots) are ignored.
        drop_prob (float): mask dropout probability used when ``training``.
        training (bool): whether to apply mask dropout.

    Returns:
        Tensor: (B, C, h, w) pooled features.
    """
    if feats.dim() != 4 or masks.dim() != 4 or feats.shape[0] != masks.shape[0]:
        raise ValueError('mask_average_pool expects feats (B, C, h, w) and masks (B, K, H, W) '
                         f'with the same B, got {tuple(feats.shape)} and {tuple(masks.shape)}')
    masks = resize_masks(masks, feats.shape[-2:])
    if training and drop_prob > 0:
        masks = drop_masks(masks, drop_prob)
    desc, _ = mask_pooled_descriptors(feats, masks, eps)
    uncovered = (1 - masks.amax(dim=1, keepdim=True)).clamp_min(0) if masks.shape[1] else \
        torch.ones_like(feats[:, :1])
    uncovered_mean, _ = mask_pooled_descriptors(feats, uncovered, eps)
    weights = masks.to(feats.dtype)
    numer = torch.einsum('bkhw,bkc->bchw', weights, desc) + \
        uncovered.to(feats.dtype) * uncovered_mean[:, 0, :, None, None]
    denom = weights.sum(dim=1, keepdim=True) + uncovered.to(feats.dtype)
    return numer / denom.clamp_min(eps)
