"""Which image SAM sees: the pipeline's (LQ) image, or a restorer's output (SPD paper, Eq. 2)."""
import copy
import hashlib
import os.path as osp

import numpy as np
import torch

from ..errors import CheckpointNotFoundError, InputNotFoundError

IMAGE_SOURCE = dict(type='image')


def module_sha256(module):
    """SHA-256 over the names, dtypes, shapes and bytes of all parameters and buffers.

    Keys a restorer by what it computes with (its frozen base weights included), not by the
    paths its config reads them from.
    """
    digest = hashlib.sha256()
    tensors = dict(module.named_parameters())
    tensors.update(module.named_buffers())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f'{name}:{t.dtype}:{tuple(t.shape)};'.encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _content_cfg(cfg):
    """The config with values that name existing files/folders replaced (content is hashed)."""
    if isinstance(cfg, dict):
        return {k: _content_cfg(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [_content_cfg(v) for v in cfg]
    if isinstance(cfg, str) and cfg and osp.exists(cfg):
        return '<file: content in weights_sha256>'
    return cfg


def _takes_class_names(model_cfg):
    """Whether the model type's constructor takes ``class_names`` (its prompts need them)."""
    import inspect
    from mmseg.registry import MODELS
    return 'class_names' in inspect.signature(MODELS.get(model_cfg['type'])).parameters


def _dataset_type(dataset_cfg):
    """The registered dataset type of a (wrapped) dataset config, for its class names."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg.get('dataset_type', dataset_cfg['type'])


class RestorerPriorSource:
    """Restore each (LQ) image with a trained restorer; SAM then runs on the restored image.

    This is the SPD paper's Eq. 2 (priors from the first network's restored output rather than
    from the degraded input), with a separate restorer because a segmentor's output is a class
    map, not an image. Works with any registered model whose ``data_preprocessor`` takes
    (3, H, W) uint8 BGR images and whose ``forward(inputs, None, mode='tensor')`` returns RGB in
    [-1, 1] (``SCRRestorer``; the ``restorer`` of a ``RestoreThenSegment`` config).

    Args:
        model_cfg (dict): the restorer's model config (prompts: no GT classes are passed).
        checkpoint (str, optional): restorer weights (an mmengine checkpoint), loaded strictly.
        device (str): torch device.
    """

    def __init__(self, model_cfg, checkpoint=None, device='cpu'):
        from mmengine.runner import load_checkpoint
        from mmseg.registry import MODELS
        self.model_cfg = copy.deepcopy(dict(model_cfg))
        self.model = MODELS.build(copy.deepcopy(self.model_cfg))
        if checkpoint is not None:
            if not osp.isfile(checkpoint) and '://' not in checkpoint:  # URLs: mmengine's loader
                raise CheckpointNotFoundError(f'restorer checkpoint {checkpoint} not found')
            load_checkpoint(self.model, checkpoint, map_location='cpu', strict=True)
        self.model.to(device).eval().requires_grad_(False)
        self.device = device
        self.info = dict(type='restorer', model=_content_cfg(self._json(self.model_cfg)),
                         weights_sha256=module_sha256(self.model))

    @staticmethod
    def _json(cfg):
        import json
        return json.loads(json.dumps(cfg, default=str))

    @classmethod
    def from_config(cls, config, checkpoint=None, device='cpu'):
        """Build from a config file whose ``model`` is a restorer or has a ``restorer`` entry
        (e.g. ``configs/scr/scr_tiny_demo.py`` or ``configs/rass/restore_then_segment_demo.py``);
        without ``checkpoint``, a ``RestoreThenSegment`` config's ``restorer_checkpoint`` is used.
        """
        from mmengine.config import Config
        if not osp.isfile(config):
            raise InputNotFoundError(f'restorer config {config} not found')
        cfg = Config.fromfile(config)
        if 'restorer' in cfg.model:  # as RestoreThenSegment builds it (its prompt defaults)
            from ..models.segmentors.restore_then_segment import restorer_defaults
            model = restorer_defaults(cfg.model.restorer.to_dict())
            if checkpoint is None:
                checkpoint = cfg.model.get('restorer_checkpoint')
        else:  # a restorer trained on its own: its dataset's class names, as SCRDatasetMetaHook
            model = cfg.model.to_dict()
            if model.get('class_names') is None and _takes_class_names(model):
                model['class_names'] = _dataset_type(cfg.train_dataloader.dataset)
        return cls(model, checkpoint, device)

    @torch.no_grad()
    def __call__(self, bgr):
        """Restore one image.

        Args:
            bgr (np.ndarray): (H, W, 3) uint8 BGR image (``LoadImage`` + ``Degrade`` output).

        Returns:
            np.ndarray: (H, W, 3) uint8 RGB restored image.
        """
        from mmseg.structures import SegDataSample
        h, w = bgr.shape[:2]
        img = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        data = self.model.data_preprocessor(dict(inputs=[img], data_samples=[sample]), False)
        out = self.model(data['inputs'], None, mode='tensor')
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[1] != 3:
            raise TypeError(f'restorer {type(self.model).__name__} returned '
                            f'{getattr(out, "shape", type(out))} in mode="tensor", expected RGB '
                            'images (B, 3, H, W) in [-1, 1]')
        out = ((out[0, :, :h, :w].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return out.permute(1, 2, 0).cpu().numpy()
