"""The SPD paper's cascaded teacher: a second network on the first one's output, SPF per block."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import add_prefix

from ..necks.spf_neck import SPFUnit
from .sam_distill_teacher import distillation_losses


def _hw_from(candidates, n):
    for c in candidates:
        if isinstance(c, (tuple, list, torch.Size)) and len(c) == 2 and \
                all(isinstance(v, int) for v in c) and c[0] * c[1] == n:
            return tuple(c)
    return None


def _as_nchw(output, extra, block):
    """Split a block's output into an NCHW tensor and a function that puts a result back.

    Handles (B, C, h, w) tensors, (B, h·w, C) token tensors whose (h, w) is among the block's
    inputs (``block(x, hw_shape)``), and tuples whose first element is one of these (the
    others may hold (h, w), as ``PatchEmbed`` returns).
    """
    if isinstance(output, torch.Tensor) and output.dim() == 4:
        return output, lambda y: y
    if isinstance(output, torch.Tensor) and output.dim() == 3:
        hw = _hw_from(extra, output.shape[1])
        if hw is not None:
            b, n, c = output.shape
            return (output.transpose(1, 2).reshape(b, c, *hw),
                    lambda y: y.flatten(2).transpose(1, 2))
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        x, put = _as_nchw(output[0], tuple(output[1:]) + tuple(extra), block)
        return x, lambda y: type(output)((put(y), ) + tuple(output[1:]))
    shape = getattr(output, 'shape', type(output).__name__)
    raise TypeError(f'SAMCascadeTeacher: block {block!r} returns {shape}; an SPF unit needs a '
                    '(B, C, h, w) feature map (or (B, h*w, C) tokens with (h, w) among the '
                    "block's inputs/outputs): choose other spf_blocks")


@MODELS.register_module()
class SAMCascadeTeacher(BaseModule):
    """The SPD paper's second network N2, cascaded behind the student, with SPF units.

    Its input is the student's output together with the image: the student's class
    probabilities (softmax of its logits, detached, bilinearly resized to the image) are
    concatenated to the normalised image, so the backbone takes ``3 + num_classes`` channels
    (set here). An SPF unit is attached to each listed building block of the backbone (a
    forward hook replacing the block's output by the unit's fused output, so the next block
    reads the fused features: the paper's Eq. 3); units are chained from the first block to
    the last like ``SPFNeck``'s. A decode head turns the features into logits, supervised by
    the ground truth; its distillation losses (SPD smooth-L1 and SGR) reach only the student.
    Nothing of this network runs at inference.

    Args:
        backbone (dict): any mmseg backbone config reading ``3 + num_classes`` channels
            (``in_channels``; set when absent). A pretrained ``init_cfg`` loads all but the
            first layer.
        decode_head (dict): decode head config (``num_classes`` = the student's).
        spf_blocks (list[str]): names of the backbone modules (``named_modules``) after which
            an SPF unit fuses the SAM priors, in execution order, e.g.
            ``['layer1', 'layer2', 'layer3', 'layer4']`` (ResNet) or
            ``['layers.0.1.1', 'layers.1.1.1', 'layers.2.1.1', 'layers.3.1.1']`` (MiT-B0, last
            transformer block of each stage).
        spf_channels (list[int]): channels of each block's output.
        mask_drop (float): SAM mask dropout probability of the SPF units in training.
        spd_loss (dict): config of ``SPDLoss`` (λ1 inside).
        sgr_loss (dict, optional): config of ``SGRLoss`` (λ2 inside); None disables SGR.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, backbone, decode_head, spf_blocks, spf_channels, mask_drop=0.5,
                 spd_loss=dict(type='SPDLoss'), sgr_loss=None, init_cfg=None):
        super().__init__(init_cfg)
        if len(spf_blocks) != len(spf_channels) or not spf_blocks:
            raise ValueError(f'SAMCascadeTeacher: spf_blocks {list(spf_blocks)} and spf_channels '
                             f'{list(spf_channels)} must be non-empty lists of the same length')
        self.num_classes = decode_head['num_classes']
        backbone = dict(backbone)
        in_channels = 3 + self.num_classes
        if backbone.get('in_channels', in_channels) != in_channels:
            raise ValueError(f'SAMCascadeTeacher: the backbone reads the image and the student\'s '
                             f'{self.num_classes} class probabilities, so its in_channels is '
                             f'{in_channels}, not {backbone["in_channels"]}')
        backbone['in_channels'] = in_channels
        self.backbone = MODELS.build(backbone)
        self.decode_head = MODELS.build(decode_head)
        self.spf_blocks = list(spf_blocks)
        self.spf_units = nn.ModuleList(
            SPFUnit(c, spf_channels[i - 1] if i else None, mask_drop)
            for i, c in enumerate(spf_channels))
        self.spd_loss = MODELS.build(spd_loss)
        self.sgr_loss = MODELS.build(sgr_loss) if sgr_loss is not None else None
        modules = dict(self.backbone.named_modules())
        for i, name in enumerate(self.spf_blocks):
            if name not in modules or not name:
                called = [n for n, m in modules.items() if n and not isinstance(
                    m, (nn.ModuleList, nn.ModuleDict))]
                raise ValueError(f'SAMCascadeTeacher: the backbone has no module {name!r}; '
                                 f'some of its modules: {called[:40]}')
            modules[name].register_forward_hook(self._make_hook(i))
        self._masks = None
        self._prev = None
        self._next = 0

    def _make_hook(self, index):
        def hook(module, args, output):
            return self._fuse(index, args, output)
        return hook

    def _fuse(self, index, args, output):
        block = self.spf_blocks[index]
        if self._masks is None:
            raise RuntimeError(f'SAMCascadeTeacher: block {block!r} ran without SAM masks: call '
                               'the teacher, not its backbone')
        if index != self._next:
            raise RuntimeError(f'SAMCascadeTeacher: block {block!r} ran in position '
                               f'{self._next}; list spf_blocks in execution order, each once')
        x, put = _as_nchw(output, args, block)
        unit = self.spf_units[index]
        if x.shape[1] != unit.proj.in_channels:
            raise ValueError(f'SAMCascadeTeacher: block {block!r} outputs {x.shape[1]} channels, '
                             f'spf_channels[{index}] is {unit.proj.in_channels}')
        fused, self._prev = unit(x, self._masks, self._prev)
        self._next += 1
        return put(fused)

    def forward(self, inputs, student_logits, masks):
        """Teacher logits.

        Args:
            inputs (Tensor): (B, 3, H, W) normalised images (the student's inputs).
            student_logits (Tensor): (B, N, h, w) student output (detached here).
            masks (Tensor): (B, K, H, W) SAM masks.

        Returns:
            Tensor: (B, N, h', w') logits.
        """
        probs = F.interpolate(student_logits.detach().softmax(dim=1), size=inputs.shape[-2:],
                              mode='bilinear', align_corners=False)
        x = torch.cat([inputs.detach(), probs.to(inputs.dtype)], dim=1)
        self._masks, self._prev, self._next = masks, None, 0
        try:
            feats = self.backbone(x)
            if self._next != len(self.spf_units):
                raise RuntimeError(f'SAMCascadeTeacher: block {self.spf_blocks[self._next]!r} '
                                   'did not run in the backbone forward')
        finally:
            self._masks, self._prev = None, None
        return self.decode_head(feats)

    def loss(self, feats, student_logits, masks, data_samples, inputs=None):
        """Teacher task loss (``teacher.*``) and the SPD/SGR distillation losses.

        Args:
            feats (tuple[Tensor]): student backbone features (unused: N2 has its own).
            student_logits (Tensor): (B, N, h, w) student decode-head output.
            masks (Tensor): (B, K, H, W) SAM masks.
            data_samples (list[SegDataSample]): with ``gt_sem_seg``.
            inputs (Tensor): (B, 3, H, W) the student's input images.

        Returns:
            dict[str, Tensor]: losses.
        """
        if inputs is None:
            raise ValueError('SAMCascadeTeacher.loss needs the input images (inputs=...)')
        teacher_logits = self(inputs, student_logits, masks)
        losses = add_prefix(self.decode_head.loss_by_feat(teacher_logits, data_samples),
                            'teacher')
        losses.update(distillation_losses(self, student_logits, teacher_logits, masks))
        return losses
