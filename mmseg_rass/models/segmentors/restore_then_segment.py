"""Restore-then-segment (R2S): a restorer (SCR, SegSR) followed by any mmseg segmentor."""
import inspect

import torch
from mmengine.model import BaseModel
from torch import nn
from mmengine.runner.checkpoint import load_checkpoint
from mmseg.registry import MODELS

_OWN_PREFIXES = ('restorer.', 'segmentor.', 'data_preprocessor.')


def restorer_defaults(restorer):
    """The restorer config as R2S builds it: no GT classes in its prompt, no training losses."""
    restorer = dict(restorer)
    takes = inspect.signature(MODELS.get(restorer['type'])).parameters
    if 'test_prompt' in takes:
        restorer.setdefault('test_prompt', 'empty')
    if 'lpips_weight' in takes:
        restorer.setdefault('lpips_weight', 0)  # evaluation only: no training losses
    return restorer


@MODELS.register_module()
class RestoreThenSegment(BaseModel):
    """The paper's R2S baseline: restore the LQ image with SCR, then segment the restored image.

    The restorer (``SCRRestorer`` with its LoRA file) is frozen; its weights never enter a
    checkpoint (random-weight tiny restorers rebuild identically from their ``init_seed``). The
    restored image (RGB in [-1, 1]) is cropped to each image's size, turned back into a 0-255 BGR image (rounded, as
    if saved to disk) and fed through the segmentor's own data preprocessor and ``predict``.
    Evaluation only: train the restorer (``configs/scr/``) and the segmentor separately.

    A checkpoint passed to ``tools/test.py`` may be the plain segmentor's (its keys are mapped
    under ``segmentor.``) or one of this model; the restorer's weights come from its LoRA file
    (SCR) or ``restorer_checkpoint`` (any restorer, e.g. a trained ``SegSR``). A restorer with a
    ``restore_images(inputs, data_samples)`` method (``SegSR``) is called through it.

    Args:
        restorer (dict | nn.Module): Restorer config, e.g. ``dict(type='SCRRestorer',
            pretrained_model_path=..., scr_lora='scr_lora.safetensors')``. ``test_prompt``
            defaults to ``'empty'`` so that no GT classes reach the restorer, ``lpips_weight``
            to 0 (no training here). Or a restorer already built (and loaded) from such a
            config, e.g. by ``tools/lq_protocol.py``, which shares it with its PSNR pass.
        segmentor (dict | nn.Module): Any mmseg segmentor config (with its
            ``data_preprocessor``), or such a segmentor already built and loaded.
        segmentor_checkpoint (str, optional): Segmentor weights loaded (strictly) at build time.
        restorer_checkpoint (str, optional): Restorer weights loaded (strictly) at build time.
        data_preprocessor (dict, optional): Turns the LQ batch into RGB in [-1, 1], padded to a
            multiple of 8 (the restorer's VAE); default ``SegDataPreProcessor`` with mean = std
            = 127.5.
        init_cfg (dict, optional): Unused.
    """

    def __init__(self,
                 restorer,
                 segmentor,
                 segmentor_checkpoint=None,
                 restorer_checkpoint=None,
                 data_preprocessor=None,
                 init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(
                type='SegDataPreProcessor', mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True,
                pad_val=0, seg_pad_val=255, test_cfg=dict(size_divisor=8))
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.restorer = (restorer if isinstance(restorer, nn.Module) else
                         MODELS.build(restorer_defaults(restorer)))
        if restorer_checkpoint is not None:  # before freezing: strict about trainable keys
            load_checkpoint(self.restorer, restorer_checkpoint, map_location='cpu', strict=True)
        self.restorer.requires_grad_(False)
        self.segmentor = (segmentor if isinstance(segmentor, nn.Module) else
                          MODELS.build(segmentor))
        if segmentor_checkpoint is not None:
            load_checkpoint(self.segmentor, segmentor_checkpoint, map_location='cpu', strict=True)
        self.register_load_state_dict_pre_hook(self._map_checkpoint_keys)

    def _map_checkpoint_keys(self, module, state_dict, prefix, local_metadata, *args):
        """Put a plain segmentor checkpoint under ``segmentor.`` (the restorer fills its own
        frozen weights, see ``save_trainable_only``)."""
        for key in [k for k in state_dict if k.startswith(prefix)]:
            if not key[len(prefix):].startswith(_OWN_PREFIXES):
                state_dict[f'{prefix}segmentor.{key[len(prefix):]}'] = state_dict.pop(key)

    def init_weights(self):
        """Keep the restorer as built; initialise the segmentor unless weights were loaded."""
        if not getattr(self.segmentor, 'is_init', False):
            self.segmentor.init_weights()
        self._is_init = True

    def train(self, mode=True):
        """The restorer always stays in eval mode."""
        super().train(mode)
        self.restorer.eval()
        return self

    @torch.no_grad()
    def restore(self, inputs, data_samples):
        """Restore a batch.

        Args:
            inputs (Tensor): LQ images (B, 3, H, W), RGB in [-1, 1], H, W multiples of 8.
            data_samples (list[SegDataSample]): For the prompt (empty unless configured).

        Returns:
            Tensor: Restored images (B, 3, H, W), RGB in [-1, 1].
        """
        if hasattr(self.restorer, 'restore_images'):
            return self.restorer.restore_images(inputs, data_samples)
        text, _ = self.restorer.encode_prompts(data_samples, training=False)
        return self.restorer.restore(inputs, text)

    def predict(self, inputs, data_samples):
        """Restore, then segment.

        Args:
            inputs (Tensor): LQ images (B, 3, H, W), RGB in [-1, 1].
            data_samples (list[SegDataSample]): With ``img_shape`` and ``ori_shape``.

        Returns:
            list[SegDataSample]: The segmentor's predictions (``pred_sem_seg`` at ``ori_shape``).
        """
        restored = self.restore(inputs, data_samples)
        images = []
        for img, sample in zip(restored, data_samples):
            h, w = sample.img_shape
            images.append(((img[:, :h, :w].flip(0) + 1) * 127.5).round().clamp(0, 255))
        data = self.segmentor.data_preprocessor(
            dict(inputs=images, data_samples=data_samples), False)
        return self.segmentor.predict(data['inputs'], data['data_samples'])

    def forward(self, inputs, data_samples=None, mode='predict'):
        """Args:
            inputs (Tensor): LQ images (B, 3, H, W), RGB in [-1, 1].
            data_samples (list[SegDataSample], optional): Image metadata.
            mode (str): ``'predict'`` (segmentations) or ``'tensor'`` (restored images).
        """
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.restore(inputs, data_samples or [{}] * len(inputs))
        raise ValueError(f'RestoreThenSegment: mode {mode!r} is not supported; it is an '
                         'evaluation-only baseline (modes predict, tensor): train the SCR '
                         'restorer (configs/scr/) and the segmentor separately')
