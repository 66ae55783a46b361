"""ImageNet-C corruptions (Hendrycks & Dietterich; the ``imagecorruptions`` package's 19) in torch.

Categories follow mmdetection's ``test_robustness``: the 15 ``benchmark`` corruptions in
``noise``/``blur``/``weather``/``digital``, and the 4 ``holdout`` ones.

Every corruption is a function ``fn(x, severity, generators)``:

* ``x``: float tensor (B, 3, H, W), **RGB**, values in [0, 255], on any device;
* ``severity``: int 1–5;
* ``generators``: one CPU ``torch.Generator`` per image (its random draws; the same image and
  seed give the same output whatever the batch);

and returns a float tensor (B, 3, H, W) (the same size). :func:`corrupt_batch` clips and
quantises the result like ``imagecorruptions.corrupt`` (``np.uint8`` of a [0, 255] float:
truncation). A function may carry ``fn.uint8_cpu(x, severity, generators)``, the same corruption
(the same bytes) on a uint8 (B, 3, H, W) CPU batch returning uint8, which :func:`corrupt_batch`
uses for uint8 CPU input (``pixelate`` and ``jpeg_compression`` through Pillow, as the
reference; the Gaussian, impulse and speckle noises, ``fog``, ``frost`` and ``spatter`` in numpy
arithmetic). The functions live in ``imagenet_c_noise_blur.py`` and
``imagenet_c_weather_digital.py``; this module names them, groups them by category and provides
the ``Corrupt`` transform.
"""
import os.path as osp

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..errors import ParameterError
from . import imagenet_c_noise_blur as _nb
from . import imagenet_c_weather_digital as _wd
from .degradation_pipeline import stable_seed

CATEGORIES = {
    'noise': ('gaussian_noise', 'shot_noise', 'impulse_noise'),
    'blur': ('defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur'),
    'weather': ('snow', 'frost', 'fog', 'brightness'),
    'digital': ('contrast', 'elastic_transform', 'pixelate', 'jpeg_compression'),
    'holdout': ('speckle_noise', 'gaussian_blur', 'spatter', 'saturate'),
}
BENCHMARK = tuple(n for c in ('noise', 'blur', 'weather', 'digital') for n in CATEGORIES[c])
CORRUPTIONS = tuple(name for names in CATEGORIES.values() for name in names)
SEVERITIES = (1, 2, 3, 4, 5)


def corruption_fn(name):
    """The function implementing corruption ``name`` (one of :data:`CORRUPTIONS`)."""
    if name not in CORRUPTIONS:
        raise ParameterError(f'unknown corruption {name!r}: choose from '
                             f'{", ".join(CORRUPTIONS)}')
    return getattr(_nb, name, None) or getattr(_wd, name)


def check_severity(severity):
    """Raise ``ParameterError`` (a ``ValueError``) unless ``severity`` is an int 1–5."""
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ParameterError(f'corruption severity {severity!r} is out of range: choose an '
                             'integer from 1 to 5')


def image_seed(img_path, name, severity):
    """The seed of one image's corruption: SHA-256 of its basename, the corruption, the severity."""
    return stable_seed(osp.basename(img_path), 'imagenet_c', name, severity)


def corrupt_batch(x, name, severity, seeds):
    """Corrupt a batch; the result is quantised as ``imagecorruptions.corrupt`` does.

    Args:
        x (Tensor): (B, 3, H, W) RGB images, uint8 or float in [0, 255], any device.
        name (str): a corruption of :data:`CORRUPTIONS`.
        severity (int): 1–5.
        seeds (Sequence[int]): one seed per image (e.g. :func:`image_seed`).

    Returns:
        Tensor: (B, 3, H, W) uint8 on ``x``'s device.
    """
    fn = corruption_fn(name)
    check_severity(severity)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f'corrupt_batch expects (B, 3, H, W) images, got {tuple(x.shape)}')
    if len(seeds) != x.shape[0]:
        raise ValueError(f'corrupt_batch got {len(seeds)} seeds for {x.shape[0]} images')
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    native = getattr(fn, 'uint8_cpu', None)
    if native is not None and x.dtype == torch.uint8 and x.device.type == 'cpu':
        return native(x, int(severity), generators)
    # one pass to a contiguous float batch (``float()`` of a permuted HWC view keeps its strides)
    out = fn(x.to(torch.float32, memory_format=torch.contiguous_format), int(severity),
             generators)
    return out.clamp_(0, 255).to(torch.uint8)


@TRANSFORMS.register_module()
class Corrupt(BaseTransform):
    """Apply one ImageNet-C corruption to ``results['img']`` (put it right after ``LoadImage``).

    The random draws are seeded from the SHA-256 of the image's basename, the corruption and
    the severity, so an evaluation set is identical across runs and processes.

    Args:
        corruption (str): an ``imagecorruptions`` name (see :data:`CORRUPTIONS`).
        severity (int): 1–5.

    Modified keys: ``img`` ((H, W, 3) uint8 BGR, same size).
    Added keys: ``corruption`` (name and severity).
    """

    def __init__(self, corruption, severity):
        corruption_fn(corruption)
        check_severity(severity)
        self.corruption = corruption
        self.severity = int(severity)

    def transform(self, results):
        img, path = results['img'], results.get('img_path')
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'Corrupt expects results["img"] as an (H, W, 3) BGR array, got '
                             f'{getattr(img, "shape", type(img))} for {path}: put Corrupt right '
                             'after LoadImage (color_type="color")')
        if not path:
            raise KeyError('Corrupt seeds from results["img_path"], which is missing: load the '
                           'image with LoadImage (or set img_path)')
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).round().astype(np.uint8)
        x = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1)[None]
        out = corrupt_batch(x, self.corruption, self.severity,
                            [image_seed(path, self.corruption, self.severity)])
        results['img'] = np.ascontiguousarray(out[0].permute(1, 2, 0).numpy()[..., ::-1])
        results['corruption'] = dict(name=self.corruption, severity=self.severity)
        return results

    def __repr__(self):
        return f'{type(self).__name__}(corruption={self.corruption!r}, severity={self.severity})'
