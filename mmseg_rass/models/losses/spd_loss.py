"""SPD: self-distillation from the SAM-prior teacher's output to the student's."""
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS


@MODELS.register_module()
class SPDLoss(nn.Module):
    """λ1 · smooth-L1(student, stop-grad(teacher)) (SPD paper, Eq. 4).

    Args:
        loss_weight (float): λ1. Default 0.005, the value the paper chose (its Table 6 tried
            0.0005, 0.005 and 0.05).
        beta (float): smooth-L1 threshold.
        loss_name (str): key of the loss in the loss dict (must start with ``loss_``).
    """

    def __init__(self, loss_weight=0.005, beta=1.0, loss_name='loss_spd'):
        super().__init__()
        self.loss_weight = loss_weight
        self.beta = beta
        self._loss_name = loss_name

    @property
    def loss_name(self):
        """Key of the loss in the loss dict."""
        return self._loss_name

    def forward(self, student, teacher):
        """Args:
            student (Tensor): (B, N, h, w) student output (logits).
            teacher (Tensor): the teacher's output, same shape; no gradient flows into it.

        Returns:
            Tensor: scalar loss.
        """
        if student.shape != teacher.shape:
            raise ValueError(f'SPDLoss: student output {tuple(student.shape)} and teacher '
                             f'output {tuple(teacher.shape)} differ in shape')
        return self.loss_weight * F.smooth_l1_loss(student, teacher.detach(), beta=self.beta)
