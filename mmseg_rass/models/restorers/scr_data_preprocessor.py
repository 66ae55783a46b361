"""Data preprocessor of the SCR restorer: LQ and HQ images to [-1, 1] RGB, padded to /8."""
import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from mmengine.structures import PixelData
from mmseg.registry import MODELS


def to_unit_range(img, bgr_to_rgb=True):
    """uint8-range image(s) (..., 3, H, W) in BGR → float RGB in [-1, 1]."""
    img = img.float()
    if bgr_to_rgb:
        img = img.flip(-3)
    return img / 127.5 - 1


def to_uint8_range(img):
    """Float RGB in [-1, 1] (..., 3, H, W) → uint8 RGB."""
    return ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@MODELS.register_module()
class SCRDataPreprocessor(BaseDataPreprocessor):
    """Batch LQ inputs, HQ targets and label maps for :class:`SCRRestorer`.

    Images (3, H, W) uint8 BGR become float RGB in [-1, 1] (SD's range). The batch is padded
    (replicate for images, ``seg_pad_val`` for labels) to the largest size rounded up to
    ``size_divisor``; each sample's ``img_shape`` metainfo keeps its unpadded size.

    Args:
        size_divisor (int): Pad H and W to a multiple of this (8 for the SD VAE). Default 8.
        seg_pad_val (int): Label used for padded pixels. Default 255.
        bgr_to_rgb (bool): Inputs are BGR (``LoadImage``). Default True.

    Returns (of ``forward``):
        dict: ``inputs`` LQ (B, 3, Hp, Wp) and ``data_samples`` whose ``gt_hq_img`` (when
        present) is float RGB (3, Hp, Wp) in [-1, 1] and ``gt_sem_seg`` (1, Hp, Wp) padded.
    """

    def __init__(self, size_divisor=8, seg_pad_val=255, bgr_to_rgb=True):
        super().__init__()
        self.size_divisor = size_divisor
        self.seg_pad_val = seg_pad_val
        self.bgr_to_rgb = bgr_to_rgb

    def _pad(self, img, size, value=None):
        pad = (0, size[1] - img.shape[-1], 0, size[0] - img.shape[-2])
        if not any(pad):
            return img
        if value is None:
            return F.pad(img[None], pad, mode='replicate')[0]
        return F.pad(img, pad, value=value)

    def forward(self, data, training=False):
        data = self.cast_data(data)
        inputs, data_samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, torch.Tensor):
            inputs = list(inputs)
        div = self.size_divisor
        size = (max(-(-img.shape[-2] // div) * div for img in inputs),
                max(-(-img.shape[-1] // div) * div for img in inputs))
        lq = torch.stack([self._pad(to_unit_range(img, self.bgr_to_rgb), size) for img in inputs])
        for sample in data_samples or []:
            if 'gt_hq_img' in sample:
                hq = to_unit_range(sample.gt_hq_img.data, self.bgr_to_rgb)
                if hq.shape[-2:] != sample.img_shape:
                    raise ValueError(f'HQ image of {sample.metainfo.get("img_path")} is '
                                     f'{tuple(hq.shape[-2:])}, LQ is {sample.img_shape}: SCR needs '
                                     'same-size pairs (use an x1 Degrade preset, or resize_back=True)')
                sample.gt_hq_img = PixelData(data=self._pad(hq, size))
            if 'gt_sem_seg' in sample:
                seg = sample.gt_sem_seg.data
                sample.gt_sem_seg = PixelData(data=self._pad(seg, size, self.seg_pad_val))
            sample.set_metainfo(dict(pad_shape=size))
        return dict(inputs=lq, data_samples=data_samples)
