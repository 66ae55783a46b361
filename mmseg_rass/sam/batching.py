"""Gathering the SAM masks of a batch of data samples into one tensor."""
import torch
import torch.nn.functional as F


def stack_sam_masks(data_samples, size, owner):
    """Stack ``data_sample.gt_sam_masks`` into a batch, zero-padded like the images.

    ``SegDataPreProcessor`` pads images at the bottom/right to a common size; masks get the
    same padding with zeros (padded pixels are uncovered).

    Args:
        data_samples (list[SegDataSample]): samples packed by ``PackSegInputsWithSAMPriors``,
            each with ``gt_sam_masks`` (K, h, w) uint8.
        size (tuple[int, int]): (H, W) of the batched inputs.
        owner (str): name of the caller, used in the error message.

    Returns:
        Tensor: (B, K, H, W) float masks.
    """
    masks = []
    for sample in data_samples:
        if 'gt_sam_masks' not in sample:
            raise KeyError(
                f'{owner} needs SAM priors but data sample {sample.metainfo.get("img_path")} '
                'has no gt_sam_masks: add LoadSAMPriors after the image loading/degradation '
                "and use PackSegInputsWithSAMPriors instead of PackSegInputs in the pipeline")
        m = sample.gt_sam_masks.data.float()
        pad_h, pad_w = size[0] - m.shape[-2], size[1] - m.shape[-1]
        if pad_h < 0 or pad_w < 0:
            raise ValueError(f'{owner}: SAM masks {tuple(m.shape)} larger than the inputs {size}')
        masks.append(F.pad(m, (0, pad_w, 0, pad_h)))
    return torch.stack(masks)
