"""L_SCL: semantic-constrained loss pulling class-token cross-attention onto the class masks."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS


@MODELS.register_module()
class SCLLoss(nn.Module):
    """Cross-attention ↔ mask alignment (CODSR / TokenCompose style) for the SCR restorer.

    For every captured attention layer and every class k named in the prompt, A_k is the
    head-mean of the probabilities of k's sub-tokens, averaged over those sub-tokens and
    resized (bilinear) to the mask grid; M_k is the fraction of valid pixels of class k in each
    mask cell (the GT averaged over ``mask_stride`` × ``mask_stride`` cells; 1 = full resolution).
    Ignored pixels are left out of both terms.

    * token term: ``(1 - Σ A_k·M_k / Σ A_k)²`` (share of k's attention that falls inside k);
    * pixel term: ``BCE(A_k / max A_k, M_k)`` **[choice]**: each map is normalised by its
      maximum so its values span [0, 1] like the mask.

    Both are averaged over classes, images and layers.

    Args:
        token_weight (float): λ_tok. Default 0.5 (CODSR); TokenCompose uses 1e-3.
        pixel_weight (float): λ_pix. Default 0.025 (CODSR); TokenCompose uses 5e-5.
        mask_stride (int): Stride of the mask grid w.r.t. the label map. Default 8 (latent).
        ignore_index (int): Label of ignored pixels. Default 255.
        loss_name (str): Prefix of the returned keys. Default ``'loss_scl'``.
    """

    def __init__(self, token_weight=0.5, pixel_weight=0.025, mask_stride=8, ignore_index=255,
                 loss_name='loss_scl'):
        super().__init__()
        self.token_weight = token_weight
        self.pixel_weight = pixel_weight
        self.mask_stride = int(mask_stride)
        self.ignore_index = ignore_index
        self.loss_name = loss_name

    def _masks(self, labels, classes):
        """Class fractions (K, h, w) and validity weight (h, w) of one label map (H, W)."""
        height, width = labels.shape
        size = (max(1, height // self.mask_stride), max(1, width // self.mask_stride))
        valid = labels != self.ignore_index
        onehot = torch.stack([labels == k for k in classes] + [valid]).float()[None]
        pooled = F.interpolate(onehot, size=size, mode='area')[0]
        weight = pooled[-1]
        masks = pooled[:-1] / weight.clamp_min(1e-6)
        return masks.clamp(0, 1), (weight > 0).float()

    def forward(self, attention_maps, token_indices, seg_labels):
        """Compute the two L_SCL terms.

        Args:
            attention_maps (list[Tensor]): Per layer, probabilities (B, heads, h, w, L) that sum
                to 1 over the L text tokens.
            token_indices (list[dict[int, list[int]]]): Per image, class id -> its token
                positions in the prompt.
            seg_labels (Tensor): Label maps (B, H, W), int, ``ignore_index`` for void.

        Returns:
            dict[str, Tensor]: ``<loss_name>_token`` and ``<loss_name>_pixel`` (weighted scalars).
        """
        if not attention_maps:
            raise ValueError('SCLLoss got no attention maps: none of the UNet cross-attention '
                             'layers matched the configured `attn_strides`')
        token_terms, pixel_terms = [], []
        for b, indices in enumerate(token_indices):
            classes = [k for k, idx in indices.items() if len(idx)]
            if not classes:
                continue
            masks, weight = self._masks(seg_labels[b], classes)
            for probs in attention_maps:
                attn = probs[b].mean(0).permute(2, 0, 1)  # (L, h, w)
                maps = torch.stack([attn[indices[k]].mean(0) for k in classes])[None]
                maps = F.interpolate(maps, size=masks.shape[-2:], mode='bilinear',
                                     align_corners=False)[0] * weight  # (K, h, w)
                inside = (maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp_min(1e-8)
                token_terms.append(((1 - inside)**2).mean())
                peak = maps.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]
                bce = F.binary_cross_entropy((maps / peak).clamp(0, 1), masks, reduction='none')
                pixel_terms.append((bce * weight).sum() / (weight.sum() * len(classes)))
        if not token_terms:  # no named class in the batch: zero loss, still in the graph
            zero = sum(p.sum() for p in attention_maps) * 0
            return {f'{self.loss_name}_token': zero, f'{self.loss_name}_pixel': zero}
        return {
            f'{self.loss_name}_token': self.token_weight * torch.stack(token_terms).mean(),
            f'{self.loss_name}_pixel': self.pixel_weight * torch.stack(pixel_terms).mean()
        }
