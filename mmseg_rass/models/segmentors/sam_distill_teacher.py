"""The SAM-prior teacher of SPD distillation, light variant: SPF neck + its own decode head."""
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import add_prefix


def distillation_losses(teacher, student_logits, teacher_logits, masks):
    """The SPD (λ1) and, if configured, SGR (λ2) losses of a teacher; none reaches the teacher.

    Args:
        teacher: a teacher with ``spd_loss`` and ``sgr_loss`` (or None) modules.
        student_logits (Tensor): (B, N, h, w) student decode-head output.
        teacher_logits (Tensor): (B, N, h', w') teacher output, resized to (h, w) if needed.
        masks (Tensor): (B, K, H, W) SAM masks.

    Returns:
        dict[str, Tensor]: losses.
    """
    if teacher_logits.shape[-2:] != student_logits.shape[-2:]:
        teacher_logits = F.interpolate(teacher_logits, size=student_logits.shape[-2:],
                                       mode='bilinear', align_corners=False)
    losses = {teacher.spd_loss.loss_name: teacher.spd_loss(student_logits, teacher_logits)}
    if teacher.sgr_loss is not None:
        losses[teacher.sgr_loss.loss_name] = teacher.sgr_loss(student_logits, teacher_logits,
                                                              masks)
    return losses


@MODELS.register_module()
class SAMDistillTeacher(BaseModule):
    """Teacher fed by SAM priors: SPF units on the student's backbone features + a head.

    The light variant of the SPD paper's second network (no second backbone; see
    ``SAMCascadeTeacher`` for the paper's cascade). Its task loss trains only the teacher (the
    student features are detached); the SPD loss pulls the student's logits towards the
    teacher's and the SGR loss matches their mask-relation matrices, with no gradient into the
    teacher.

    Args:
        neck (dict): config of the prior-fusion neck (``SPFNeck``).
        decode_head (dict): config of the teacher's decode head (usually the student's).
        spd_loss (dict): config of ``SPDLoss`` (λ1 inside).
        sgr_loss (dict, optional): config of ``SGRLoss`` (λ2 inside); None disables SGR.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, neck, decode_head, spd_loss=dict(type='SPDLoss'), sgr_loss=None,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        self.spd_loss = MODELS.build(spd_loss)
        self.sgr_loss = MODELS.build(sgr_loss) if sgr_loss is not None else None

    def forward(self, feats, masks):
        """Teacher logits.

        Args:
            feats (tuple[Tensor]): student backbone features (detached here).
            masks (Tensor): (B, K, H, W) SAM masks.

        Returns:
            Tensor: (B, N, h, w) logits.
        """
        return self.decode_head(self.neck([f.detach() for f in feats], masks))

    def loss(self, feats, student_logits, masks, data_samples, inputs=None):
        """Teacher task loss (``teacher.*``) and the SPD/SGR distillation losses.

        Args:
            feats (tuple[Tensor]): student backbone features.
            student_logits (Tensor): (B, N, h, w) student decode-head output.
            masks (Tensor): (B, K, H, W) SAM masks.
            data_samples (list[SegDataSample]): with ``gt_sem_seg``.
            inputs (Tensor, optional): the student's input images (unused here).

        Returns:
            dict[str, Tensor]: losses.
        """
        teacher_logits = self(feats, masks)
        losses = add_prefix(self.decode_head.loss_by_feat(teacher_logits, data_samples),
                            'teacher')
        losses.update(distillation_losses(self, student_logits, teacher_logits, masks))
        return losses
