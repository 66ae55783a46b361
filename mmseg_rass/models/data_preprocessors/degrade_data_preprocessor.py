"""``DegradeSegDataPreProcessor``: the degradation of a whole batch on the model's device."""
import os.path as osp

import numpy as np
import torch
from mmseg.models import SegDataPreProcessor
from mmseg.registry import MODELS

from mmseg_rass.transforms.degradation_pipeline import (degrade_batch, make_config,
                                                        sample_params, stable_seed)


@MODELS.register_module()
class DegradeSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that first degrades the batch (the batched form of ``Degrade``).

    The images arrive clean (no ``Degrade`` in the dataset pipeline), are moved to the model's
    device, and are degraded there with per-sample random parameters: kernels are built as one
    batch on the device, blur and final sinc run as grouped convolutions, JPEG uses nvJPEG on
    CUDA (OpenCV on CPU). Same distribution as ``Degrade`` with the same arguments. Training
    batches draw their parameters from numpy's global generator (seeded by mmengine); test
    batches are left clean unless ``degrade_test=True``, which seeds every image from its file
    name, preset and severity like ``Degrade(deterministic=True)`` (on CPU in float64,
    byte-identical to the transform applied at the same point).

    Args:
        degradation (dict): ``Degrade`` arguments: ``preset``, ``severity`` and parameter
            overrides. The output must keep the input size (x1 presets, families, or
            ``resize_back=True``).
        degrade_test (bool): degrade validation/test batches deterministically too.
        **kwargs: arguments of :class:`mmseg.models.SegDataPreProcessor`.

    Inputs: ``data['inputs']`` list of (3, H, W) uint8 BGR tensors (as packed by
    ``PackSegInputs``); images of equal size are degraded together.
    """

    def __init__(self, degradation=None, degrade_test=False, **kwargs):
        super().__init__(**kwargs)
        degradation = dict(degradation or dict(preset='rass_x1'))
        self.preset = degradation.pop('preset', 'rass_x1')
        self.severity = degradation.pop('severity', None)
        self.degradation_cfg = make_config(self.preset, self.severity, **degradation)
        if self.degradation_cfg['scale'] != 1 and not self.degradation_cfg['resize_back']:
            raise ValueError(
                f'DegradeSegDataPreProcessor: degradation preset {self.preset!r} has scale '
                f'{self.degradation_cfg["scale"]}, which would change the image size under the '
                'labels; add resize_back=True to the degradation dict or use a x1 preset')
        self.degrade_test = degrade_test

    def _rng(self, sample, deterministic):
        if not deterministic:
            return np.random.default_rng(np.random.randint(0, 2 ** 63 - 1, dtype=np.int64))
        path = sample.metainfo.get('img_path') if sample is not None else None
        if not path:
            raise KeyError('DegradeSegDataPreProcessor(degrade_test=True) seeds each test image '
                           'from data_samples[i].img_path, which is missing: pack img_path in '
                           'PackSegInputs meta_keys')
        return np.random.default_rng(stable_seed(osp.basename(path), self.preset, self.severity))

    def degrade(self, inputs, data_samples=None, deterministic=False):
        """Degrade a list of images.

        Args:
            inputs (list[Tensor]): (3, H, W) uint8 BGR images on the model's device.
            data_samples (list[SegDataSample] | None): needed for ``deterministic``.
            deterministic (bool): seed each image from its file name.

        Returns:
            list[Tensor]: (3, H, W) uint8 degraded images, same order.
        """
        samples = data_samples if data_samples is not None else [None] * len(inputs)
        params = [sample_params(self.degradation_cfg, self._rng(s, deterministic))
                  for s in samples]
        out = [None] * len(inputs)
        groups = {}
        for i, img in enumerate(inputs):
            groups.setdefault(tuple(img.shape), []).append(i)
        for idx in groups.values():
            batch = torch.stack([inputs[i] for i in idx])
            dtype = (torch.float64 if deterministic and batch.device.type == 'cpu'
                     else torch.float32)
            lq = degrade_batch(batch, [params[i] for i in idx], self.degradation_cfg, dtype)
            for i, img in zip(idx, lq):
                out[i] = img
        return out

    def forward(self, data, training=False):
        """Degrade (training, or test with ``degrade_test``), then run ``SegDataPreProcessor``."""
        data = self.cast_data(data)
        if training or self.degrade_test:
            inputs = [x if x.dtype == torch.uint8 else x.clamp(0, 255).round().to(torch.uint8)
                      for x in data['inputs']]
            data = dict(data, inputs=self.degrade(inputs, data.get('data_samples'),
                                                  deterministic=not training))
        return super().forward(data, training)
