"""``Degrade``: synthesise a low-quality image (Real-ESRGAN second-order degradation)."""
import os.path as osp

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .degradation_pipeline import degrade_batch, make_config, sample_params, stable_seed


@TRANSFORMS.register_module()
class Degrade(BaseTransform):
    """Degrade ``results['img']`` with the Real-ESRGAN second-order pipeline.

    Place it right after ``LoadImage``. Parameters are drawn per image; with
    ``deterministic=True`` they (and the noise) are seeded from the SHA-256 of the image's
    basename, the preset and the severity, and the computation runs in float64, so an
    evaluation set is byte-identical across runs, processes and machines. Otherwise they are
    drawn from numpy's global generator (seeded by mmengine's ``randomness.seed`` per worker).

    Args:
        preset (str): ``rass_x1`` (RASS: scale 1), ``realesrgan_x4`` (output 1/4 size unless
            ``resize_back=True``) or a family ``blur``, ``noise``, ``jpeg``, ``downsample``,
            ``mixed`` (see ``docs/degradation.md``).
        severity (int | None): 1–5 for families, None for presets.
        deterministic (bool): seed every image from its file name (evaluation sets).
        keep_hq (bool): keep the clean image in ``results['hq_img']``.
        **overrides: any parameter of ``degradation_pipeline.RASS_X1`` (ranges, probabilities,
            ``resize_back``...); checked, a bad one raises ``ValueError`` naming it.

    Modified keys: ``img`` (H, W, 3) uint8 BGR → (h, w, 3) uint8, ``img_shape``.
    Added keys: ``hq_img`` (with ``keep_hq``), ``degradation`` (preset, severity, overrides
    and the drawn parameters).
    """

    def __init__(self, preset='rass_x1', severity=None, deterministic=False, keep_hq=False,
                 **overrides):
        self.cfg = make_config(preset, severity, **overrides)
        self.preset = preset
        self.severity = severity
        self.deterministic = deterministic
        self.keep_hq = keep_hq
        self.overrides = overrides

    def _rng(self, results):
        if not self.deterministic:
            return np.random.default_rng(np.random.randint(0, 2 ** 63 - 1, dtype=np.int64))
        path = results.get('img_path')
        if not path:
            raise KeyError('Degrade(deterministic=True) seeds from results["img_path"], which is '
                           'missing: load the image with LoadImage (or set img_path)')
        return np.random.default_rng(stable_seed(osp.basename(path), self.preset, self.severity))

    def transform(self, results):
        img = results['img']
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'Degrade expects results["img"] as an (H, W, 3) BGR array, got '
                             f'{getattr(img, "shape", type(img))} for {results.get("img_path")}: '
                             'put Degrade right after LoadImage (color_type="color")')
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).round().astype(np.uint8)
        params = sample_params(self.cfg, self._rng(results))
        dtype = torch.float64 if self.deterministic else torch.float32
        x = torch.empty((1, 3, *img.shape[:2]), dtype=dtype)
        x[0].copy_(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1))  # CHW, one pass
        out = degrade_batch(x.div_(255.), [params], self.cfg)[0].permute(1, 2, 0).numpy()
        if self.keep_hq:
            results['hq_img'] = img
        results['img'] = np.ascontiguousarray(out)
        results['img_shape'] = out.shape[:2]
        results['degradation'] = dict(preset=self.preset, severity=self.severity,
                                      overrides=dict(self.overrides), params=params)
        return results

    def __repr__(self):
        extra = ''.join(f', {k}={v!r}' for k, v in self.overrides.items())
        return (f'{type(self).__name__}(preset={self.preset!r}, severity={self.severity}, '
                f'deterministic={self.deterministic}, keep_hq={self.keep_hq}{extra})')
