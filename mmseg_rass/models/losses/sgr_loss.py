"""SGR: semantic-guided relation loss on frozen VGG features pooled per SAM mask."""
import os.path as osp

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.vgg import cfgs, make_layers
from mmseg.registry import MODELS

from ...sam.pooling import mask_pooled_descriptors, resize_masks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_frozen_vgg16(weights_path=None, random_init=False, last_layer=15):
    """The first layers of torchvision's VGG16 ``features``, frozen.

    Args:
        weights_path (str, optional): local torchvision VGG16 state dict (e.g.
            ``vgg16-397923af.pth``; full-model or ``features``-only keys).
        random_init (bool): use random weights instead (tests only); exactly one of
            ``weights_path`` / ``random_init`` must be given.
        last_layer (int): index of the last ``features`` layer kept.

    Returns:
        nn.Sequential: frozen layers in eval mode.
    """
    if (weights_path is None) == (not random_init):
        raise ValueError('SGRLoss needs VGG16 weights: pass vgg_weights=<local torchvision '
                         'vgg16-397923af.pth> (or random_init_vgg=True for tests, not both)')
    vgg = make_layers(cfgs['D'])[:last_layer + 1]  # torchvision's VGG16 ``features``
    if weights_path is not None:
        if not osp.isfile(weights_path):
            raise FileNotFoundError(
                f'VGG16 weights {weights_path} not found: download torchvision\'s '
                'vgg16-397923af.pth and set vgg_weights to its local path')
        state = torch.load(weights_path, map_location='cpu', weights_only=True)
        state = {k[len('features.'):] if k.startswith('features.') else k: v
                 for k, v in state.items() if not k.startswith('classifier.')}
        state = {k: v for k, v in state.items() if int(k.split('.')[0]) <= last_layer}
        vgg.load_state_dict(state)
    vgg.requires_grad_(False)
    return vgg.eval()


@MODELS.register_module()
class SGRLoss(nn.Module):
    """λ2 · mean over VGG layers of MSE(R(student), R(teacher)), R = mask relation matrix.

    SPD paper, Eqs. 5-7: both outputs go through frozen VGG16 (class probabilities are first
    rendered as an image with a fixed palette when ``input_type='probs'``; RGB in [0, 1] is
    used as is with ``'image'``); each layer's features are averaged inside every SAM mask
    (Eq. 5, one descriptor per mask); the relation between masks i and j is
    ``relation='l2'``: the mean squared difference of their descriptors (Eq. 6, default), or
    ``'cosine'``: their cosine similarity. The loss is the mean squared difference of the two
    K × K relations (Eq. 7) over pairs of non-empty masks; the teacher side gets no gradient.

    Args:
        loss_weight (float): λ2. Default 200, the paper's choice (Table 6: 20, 200, 2000).
        vgg_weights (str, optional): local torchvision VGG16 weights file.
        random_init_vgg (bool): random VGG weights (tests); exclusive with ``vgg_weights``.
        layer_ids (tuple[int]): VGG16 ``features`` indices whose outputs are compared
            (3, 8, 15 = relu1_2, relu2_2, relu3_3).
        input_type (str): ``'probs'`` (outputs are class logits) or ``'image'``.
        relation (str): ``'l2'`` (paper) or ``'cosine'``.
        palette (list[list[int]], optional): RGB colour per class for ``'probs'``; a fixed
            seeded palette is used when omitted.
        loss_name (str): key of the loss in the loss dict.
    """

    def __init__(self, loss_weight=200., vgg_weights=None, random_init_vgg=False,
                 layer_ids=(3, 8, 15), input_type='probs', relation='l2', palette=None,
                 loss_name='loss_sgr'):
        super().__init__()
        if input_type not in ('probs', 'image'):
            raise ValueError(f"SGRLoss input_type must be 'probs' or 'image', got {input_type!r}")
        if relation not in ('l2', 'cosine'):
            raise ValueError(f"SGRLoss relation must be 'l2' or 'cosine', got {relation!r}")
        self.loss_weight = loss_weight
        self.layer_ids = tuple(sorted(layer_ids))
        self.input_type = input_type
        self.relation_type = relation
        self._loss_name = loss_name
        self.vgg = build_frozen_vgg16(vgg_weights, random_init_vgg, self.layer_ids[-1])
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        self.palette = None if palette is None else torch.tensor(palette, dtype=torch.float) / 255

    @property
    def loss_name(self):
        """Key of the loss in the loss dict."""
        return self._loss_name

    def train(self, mode=True):
        """Keep the VGG in eval mode."""
        super().train(mode)
        self.vgg.eval()
        return self

    def _render(self, x):
        if self.input_type == 'image':
            return x
        palette = self.palette
        if palette is None or palette.shape[0] != x.shape[1]:
            palette = torch.rand(x.shape[1], 3, generator=torch.Generator().manual_seed(0))
        return torch.einsum('bnhw,nc->bchw', x.softmax(dim=1), palette.to(x))

    def _features(self, x):
        x = (self._render(x) - self.mean.to(x)) / self.std.to(x)
        feats = []
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in self.layer_ids:
                feats.append(x)
        return feats

    @staticmethod
    def relation(feats, masks, kind='l2'):
        """Relation between mask descriptors (mean feature inside each mask).

        Args:
            feats (Tensor): (B, C, h, w) features.
            masks (Tensor): (B, K, H, W) masks.
            kind (str): ``'l2'``: R_ij = mean_c (d_ic − d_jc)²; ``'cosine'``:
                R_ij = cos(d_i, d_j).

        Returns:
            tuple[Tensor, Tensor]: relation (B, K, K) and valid (B, K) bool (non-empty masks).
        """
        m = resize_masks(masks, feats.shape[-2:])
        desc, area = mask_pooled_descriptors(feats, m)
        if kind == 'cosine':
            desc = F.normalize(desc, dim=-1)
            return desc @ desc.transpose(1, 2), area > 0
        diff = desc[:, :, None] - desc[:, None]
        return diff.pow(2).mean(-1), area > 0

    def forward(self, student, teacher, masks):
        """Args:
            student (Tensor): (B, N, h, w) student output.
            teacher (Tensor): the teacher's output, same shape (no gradient flows into it).
            masks (Tensor): (B, K, H, W) SAM masks.

        Returns:
            Tensor: scalar loss.
        """
        with torch.no_grad():
            t_feats = self._features(teacher.detach())
        loss = student.new_zeros(())
        for s, t in zip(self._features(student), t_feats):
            r_s, valid = self.relation(s, masks, self.relation_type)
            r_t, _ = self.relation(t, masks, self.relation_type)
            pairs = (valid[:, :, None] & valid[:, None, :]).to(r_s.dtype)
            loss = loss + ((r_s - r_t) ** 2 * pairs).sum() / pairs.sum().clamp_min(1)
        return self.loss_weight * loss / len(t_feats)
