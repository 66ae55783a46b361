"""``SegSRDataPreProcessor``: mmseg's preprocessing, plus the HQ image SegSR trains against."""
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models import SegDataPreProcessor
from mmseg.registry import MODELS


def _hq_scale(hq_shape, lq_shape, path):
    """The integer factor s with ``hq_shape == s * lq_shape`` (one error otherwise)."""
    (hh, hw), (lh, lw) = tuple(hq_shape), tuple(lq_shape)
    if hh % lh or hw % lw or hh // lh != hw // lw:
        raise ValueError(
            f'HQ image of {path} is {(hh, hw)}, the LQ input is {(lh, lw)}: SegSR needs the HQ '
            'image to be the LQ size times the model scale (Degrade(keep_hq=True) after the '
            'geometric transforms with a preset of that scale: rass_x1 for scale=1, '
            'realesrgan_x4 for scale=4; HQ crop sizes divisible by the scale)')
    return hh // lh


@MODELS.register_module()
class SegSRDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that also prepares ``gt_hq_img`` (from ``PackRestorationInputs``).

    Defaults give SD's input range: RGB in [-1, 1] (``mean = std = 127.5``, ``bgr_to_rgb``);
    training batches are padded to ``size`` if given, else to a multiple of ``size_divisor``
    (default 8; SegSR pads further to its UNet's multiple inside and crops back). For
    super-resolution the HQ image and the label map are ``s`` times the LQ input (s = 1, 2,
    4, ...: read from the sizes) and are padded to ``s`` times the padded input.

    * training: ``gt_hq_img`` is normalised exactly like the input, ``gt_hq_img`` and
      ``gt_sem_seg`` are padded bottom/right (``pad_val`` / ``seg_pad_val``) to ``s`` × the
      padded input → float (3, s·Hp, s·Wp) and (1, s·Hp, s·Wp);
    * validation/test: ``gt_hq_img`` only becomes uint8 RGB (3, H, W) for
      ``RestorationMetric``; the model never reads it.

    Args:
        mean, std (Sequence[float]): Normalisation. Default 127.5 each.
        bgr_to_rgb (bool): Default True.
        size (tuple[int], optional): Fixed training pad size of the LQ input (the LQ crop).
        size_divisor (int, optional): Pad multiple when ``size`` is None. Default 8.
        **kwargs: Other :class:`mmseg.models.SegDataPreProcessor` arguments.
    """

    def __init__(self, mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5), bgr_to_rgb=True,
                 size=None, size_divisor=None, **kwargs):
        if size is None and size_divisor is None:
            size_divisor = 8
        super().__init__(mean=list(mean), std=list(std), bgr_to_rgb=bgr_to_rgb, size=size,
                         size_divisor=size_divisor, **kwargs)

    def forward(self, data, training=False):
        samples = data.get('data_samples') or []
        # labels belong to the HQ image: mmseg would pad them by the LQ input's padding
        labels = [s.gt_sem_seg.data if training and 'gt_sem_seg' in s else None
                  for s in samples]
        data = super().forward(data, training)
        inputs = data['inputs']
        for sample, label in zip(data['data_samples'] or [], labels):
            if 'gt_hq_img' not in sample:
                continue
            hq = sample.gt_hq_img.data
            if self.channel_conversion and hq.shape[0] == 3:
                hq = hq[[2, 1, 0]]
            if not training:
                sample.gt_hq_img = PixelData(data=hq)
                continue
            path = sample.metainfo.get('img_path')
            scale = _hq_scale(hq.shape[-2:], sample.img_shape, path)
            if label is not None and tuple(label.shape[-2:]) != tuple(hq.shape[-2:]):
                raise ValueError(f'label map of {path} is {tuple(label.shape[-2:])}, its HQ '
                                 f'image {tuple(hq.shape[-2:])}: the label must have the HQ '
                                 'size (crop both before Degrade)')
            hq = hq.float()
            if self._enable_normalize:
                hq = (hq - self.mean) / self.std
            height, width = scale * inputs.shape[-2], scale * inputs.shape[-1]
            pad = (0, width - hq.shape[-1], 0, height - hq.shape[-2])
            sample.gt_hq_img = PixelData(data=F.pad(hq, pad, value=self.pad_val))
            if label is not None:
                sample.gt_sem_seg = PixelData(data=F.pad(label, pad, value=self.seg_pad_val))
        return data
