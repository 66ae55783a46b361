"""The student of SAM prior distillation (SPD + SGR): a plain EncoderDecoder at inference."""
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import add_prefix

from ...sam.batching import stack_sam_masks


@MODELS.register_module()
class SAMDistillEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` that, in training, adds the losses of an attached SAM-prior teacher.

    ``SAMDistillHook`` builds a teacher (``SAMDistillTeacher`` or ``SAMCascadeTeacher``) and
    attaches it with :meth:`attach_teacher`; the teacher is kept out of the module tree, so it
    is absent from ``parameters()``, ``state_dict()`` and the DDP wrapper (the hook stores it
    in checkpoints under its own key). Without a teacher
    (inference, ``tools/test.py``, training without the hook) this is exactly
    ``EncoderDecoder``: no SAM, no priors. Arguments are those of ``EncoderDecoder``.
    """

    @property
    def teacher(self):
        """The attached teacher, or None."""
        return self.__dict__.get('_sam_teacher')

    def attach_teacher(self, teacher):
        """Attach (or with None detach) the teacher without registering it as a submodule."""
        self.__dict__['_sam_teacher'] = teacher

    def loss(self, inputs, data_samples):
        """Student task losses, plus the teacher's task and distillation losses if attached.

        Args:
            inputs (Tensor): (B, 3, H, W) images.
            data_samples (list[SegDataSample]): with ``gt_sem_seg`` and, when a teacher is
                attached, ``gt_sam_masks``.

        Returns:
            dict[str, Tensor]: losses.
        """
        x = self.extract_feat(inputs)
        seg_logits = self.decode_head(x)
        losses = add_prefix(self.decode_head.loss_by_feat(seg_logits, data_samples), 'decode')
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        if self.teacher is not None:
            masks = stack_sam_masks(data_samples, inputs.shape[-2:], 'SAMDistillHook teacher')
            losses.update(self.teacher.loss(x, seg_logits, masks.to(inputs), data_samples,
                                            inputs=inputs))
        return losses
