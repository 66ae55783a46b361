"""``PackRestorationInputs``: PackSegInputs plus the clean (HQ) image for restorers."""
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackRestorationInputs(PackSegInputs):
    """Pack like ``PackSegInputs`` and add ``results['hq_img']`` as ``data_sample.gt_hq_img``.

    Use after ``Degrade(keep_hq=True)`` (LQ in ``img``, clean image in ``hq_img``). Without
    ``hq_img`` (inference on a real low-quality photo: no clean image exists) it packs like
    ``PackSegInputs``; what needs the clean image (a restorer's loss, ``RestorationMetric``)
    then fails naming what is missing.

    Args:
        meta_keys (tuple[str]): As ``PackSegInputs``.

    Added to the data sample: ``gt_hq_img`` PixelData (3, H, W) uint8 BGR.
    """

    def transform(self, results):
        packed = super().transform(results)
        if 'hq_img' not in results:
            return packed
        hq = np.ascontiguousarray(results['hq_img'].transpose(2, 0, 1))
        packed['data_samples'].gt_hq_img = PixelData(data=torch.from_numpy(hq))
        return packed
