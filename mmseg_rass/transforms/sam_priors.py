"""Loading cached SAM priors so that mmseg's geometric transforms keep them aligned."""

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..sam.prior_io import load_sam_prior, prior_path, read_manifest


@TRANSFORMS.register_module()
class LoadSAMPriors(BaseTransform):
    """Load the SAM masks of ``results['img_path']`` from a prior folder.

    The masks go to ``results['gt_sam_masks']`` as an (H, W, K) uint8 array (0/1) listed in
    ``results['seg_fields']``, so mmseg's ``Resize``/``RandomResize`` (nearest), ``RandomCrop``
    and ``RandomFlip`` transform them exactly like the label map. ``results['sam_valid']``
    (K,) bool tells which slots hold a mask. Place it right after ``LoadImage`` (and
    ``Degrade``), before any geometric transform, and pack with ``PackSegInputsWithSAMPriors``.

    Args:
        prior_dir (str): folder written by ``tools/extract_sam_priors.py``.
        img_root (str, optional): folder image paths are relative to; defaults to the
            ``img_root`` recorded in the manifest (the dataset's ``data_root``).
    """

    def __init__(self, prior_dir, img_root=None):
        self.prior_dir = prior_dir
        self.img_root = img_root
        self._manifest = None

    def _root(self):
        if self.img_root is not None:
            return self.img_root
        if self._manifest is None:
            self._manifest = read_manifest(self.prior_dir)
        return self._manifest['img_root']

    def transform(self, results):
        img_path = results['img_path']
        path = prior_path(self.prior_dir, img_path, self._root())
        try:
            masks, valid = load_sam_prior(path)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'no SAM prior for image {img_path} (expected {path}): run '
                f'`python tools/extract_sam_priors.py CONFIG --out {self.prior_dir} ...` for '
                'this split (it resumes, only missing images are processed)') from e
        h, w = results['img'].shape[:2]
        if masks.shape[1:] != (h, w):
            raise ValueError(
                f'SAM prior {path} is {masks.shape[1]}x{masks.shape[2]} but image {img_path} is '
                f'{h}x{w} at this point of the pipeline: put LoadSAMPriors before any resize/'
                'crop, and make the priors with the same degradation (e.g. the same scale)')
        results['gt_sam_masks'] = np.ascontiguousarray(masks.transpose(1, 2, 0), dtype=np.uint8)
        results['sam_valid'] = valid
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_sam_masks' not in seg_fields:
            seg_fields.append('gt_sam_masks')
        return results

    def __repr__(self):
        return f'{type(self).__name__}(prior_dir={self.prior_dir!r}, img_root={self.img_root!r})'
