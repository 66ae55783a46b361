"""``PackSegInputs`` that also packs the SAM masks loaded by ``LoadSAMPriors``."""
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackSegInputsWithSAMPriors(PackSegInputs):
    """Pack like ``PackSegInputs`` and add ``data_sample.gt_sam_masks``.

    ``gt_sam_masks`` is a ``PixelData`` holding a (K, H, W) uint8 tensor (0/1) aligned with
    ``inputs``. Samples without ``results['gt_sam_masks']`` are packed exactly as
    ``PackSegInputs`` does, so the same pipeline serves models that ignore the priors.
    Arguments are those of ``PackSegInputs``.
    """

    def transform(self, results):
        packed = super().transform(results)
        masks = results.get('gt_sam_masks')
        if masks is not None:
            if masks.ndim == 2:  # cv2 drops a single channel when resizing
                masks = masks[..., None]
            data = torch.from_numpy(np.ascontiguousarray(masks.transpose(2, 0, 1)))
            packed['data_samples'].gt_sam_masks = PixelData(data=data)
        return packed
