"""An EncoderDecoder whose neck receives the SAM priors of each image (for SPT)."""
import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from ...sam.batching import stack_sam_masks


@MODELS.register_module()
class SAMPriorEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` that feeds SAM masks to a prior-aware neck (``SPTNeck``).

    The masks of ``data_samples`` (``gt_sam_masks``, packed by ``PackSegInputsWithSAMPriors``)
    are appended to the image channels, so whole and sliding-window inference crop them with
    the image; ``extract_feat`` splits them off again and calls ``neck(features, masks)``.

    Args:
        trainable_modules (tuple[str], optional): names of the only submodules that train
            (e.g. ``('neck',)`` for SPT on a frozen pretrained segmentor); all other
            parameters get ``requires_grad=False`` and their modules stay in eval mode.
            ``None`` trains everything.
        img_channels (int): channels of the image part of ``inputs``.
        **kwargs: arguments of :class:`mmseg.models.EncoderDecoder` (``neck`` required).
    """

    def __init__(self, *args, trainable_modules=None, img_channels=3, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.with_neck:
            raise ValueError('SAMPriorEncoderDecoder needs a prior-aware neck, e.g. '
                             'neck=dict(type="SPTNeck", in_channels=[...])')
        self.img_channels = img_channels
        self.trainable_modules = tuple(trainable_modules) if trainable_modules else None
        if self.trainable_modules:
            children = dict(self.named_children())
            unknown = [n for n in self.trainable_modules if n not in children]
            if unknown:
                raise ValueError(f'trainable_modules {unknown} are not submodules of the '
                                 f'segmentor (it has {sorted(children)})')
            for name, module in children.items():
                module.requires_grad_(name in self.trainable_modules)

    def train(self, mode=True):
        """Set train mode, keeping frozen submodules in eval mode."""
        super().train(mode)
        if self.trainable_modules:
            for name, module in self.named_children():
                if name not in self.trainable_modules:
                    module.eval()
        return self

    def _with_masks(self, inputs, data_samples):
        if data_samples is None:
            raise ValueError('SAMPriorEncoderDecoder needs data_samples with gt_sam_masks')
        masks = stack_sam_masks(data_samples, inputs.shape[-2:], type(self).__name__)
        return torch.cat([inputs, masks.to(inputs)], dim=1)

    def extract_feat(self, inputs):
        """Args: inputs (Tensor): (B, img_channels + K, H, W) images with masks appended.

        Returns:
            tuple[Tensor]: neck outputs.
        """
        img, masks = inputs[:, :self.img_channels], inputs[:, self.img_channels:]
        return self.neck(self.backbone(img), masks)

    def loss(self, inputs, data_samples):
        """Losses of ``EncoderDecoder`` with the SAM masks passed to the neck."""
        return super().loss(self._with_masks(inputs, data_samples), data_samples)

    def predict(self, inputs, data_samples=None):
        """Prediction of ``EncoderDecoder`` with the SAM masks passed to the neck."""
        return super().predict(self._with_masks(inputs, data_samples), data_samples)

    def _forward(self, inputs, data_samples=None):
        """Raw decode-head output with the SAM masks passed to the neck."""
        return super()._forward(self._with_masks(inputs, data_samples), data_samples)
