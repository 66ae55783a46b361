"""``SegSRDataPreProcessor``: mmseg's preprocessing, plus the HQ image SegSR trains against."""
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models import SegDataPreProcessor
from mmseg.registry import MODELS


@MODELS.register_module()
class SegSRDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that also prepares ``gt_hq_img`` (from ``PackRestorationInputs``).

    Defaults give SD's input range: RGB in [-1, 1] (``mean = std = 127.5``, ``bgr_to_rgb``);
    training batches are padded to ``size`` if given, else to a multiple of ``size_divisor``
    (default 8; SegSR pads further to its UNet's multiple inside and crops back).

    * training: ``gt_hq_img`` is normalised exactly like the input and padded like it
      (bottom/right, ``pad_val``) → float (3, Hp, Wp);
    * validation/test: ``gt_hq_img`` only becomes uint8 RGB (3, H, W) for
      ``RestorationMetric``; the model never reads it.

    Args:
        mean, std (Sequence[float]): Normalisation. Default 127.5 each.
        bgr_to_rgb (bool): Default True.
        size (tuple[int], optional): Fixed training pad size (the crop size).
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
        data = super().forward(data, training)
        inputs = data['inputs']
        for sample in data['data_samples'] or []:
            if 'gt_hq_img' not in sample:
                continue
            hq = sample.gt_hq_img.data
            if self.channel_conversion and hq.shape[0] == 3:
                hq = hq[[2, 1, 0]]
            if not training:
                sample.gt_hq_img = PixelData(data=hq)
                continue
            if tuple(hq.shape[-2:]) != tuple(sample.img_shape):
                raise ValueError(
                    f'HQ image of {sample.metainfo.get("img_path")} is {tuple(hq.shape[-2:])}, '
                    f'the LQ input is {tuple(sample.img_shape)}: SegSR needs same-size pairs '
                    '(Degrade(keep_hq=True) after the geometric transforms, an x1 preset or '
                    'resize_back=True)')
            hq = hq.float()
            if self._enable_normalize:
                hq = (hq - self.mean) / self.std
            pad = (0, inputs.shape[-1] - hq.shape[-1], 0, inputs.shape[-2] - hq.shape[-2])
            sample.gt_hq_img = PixelData(data=F.pad(hq, pad, value=self.pad_val))
        return data
