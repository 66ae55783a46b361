"""Optimizer wrapper constructor for models with frozen parts (RASS backbone, SPT)."""
import re

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.engine.optimizers import LearningRateDecayOptimizerConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

from .rass_backbone import RASSBackbone

# paramwise_cfg keys of mmseg's (Learning)LayerDecayOptimizerConstructor.
LAYER_DECAY_KEYS = ('decay_rate', 'layer_decay_rate', 'decay_type', 'num_layers')


def rass_layer_id(name, unet):
    """Depth of a trainable RASS backbone parameter, in forward order of the UNet's blocks.

    ``conv_in`` is 0, down block i is 1 + i, the mid block 1 + D, up block j 2 + D + j (D down
    blocks); the projections (new layers) return None, like the head.

    Args:
        name (str): parameter name relative to the backbone (``unet.up_blocks.2...``).
        unet (nn.Module): the backbone's UNet (for its block counts).

    Returns:
        int | None: the layer id, None for new layers.
    """
    if name.startswith('projections.'):
        return None
    num_down = len(unet.down_blocks)
    match = re.match(r'unet\.(conv_in|down_blocks|mid_block|up_blocks)\.(\d+)?', name)
    if match is None:
        raise ValueError(f'RASSOptimWrapperConstructor: no layer-decay depth for the trainable '
                         f'backbone parameter {name!r}; give it one in rass_layer_id()')
    part, index = match.group(1), match.group(2)
    if part == 'conv_in':
        return 0
    if part == 'down_blocks':
        return 1 + int(index)
    if part == 'mid_block':
        return 1 + num_down
    return 2 + num_down + int(index)


class _TrainableParameters:
    """What the default constructor reads of a model without ``paramwise_cfg``: its trainable
    parameters only."""

    def __init__(self, model):
        self.model = model

    def parameters(self):
        return (p for p in self.model.parameters() if p.requires_grad)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class RASSOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optimizer constructor that understands the ``paramwise_cfg`` of any mmseg config.

    * ``custom_keys`` / ``*_mult`` (mmengine's default constructor, e.g. SegFormer's or Swin's
      recipe): the trainable parameters are grouped exactly as by the default constructor, but
      a sub-module whose parameters are all frozen is left out, so the frozen Stable Diffusion
      weights (or a frozen segmentor under SPT) do not log one warning each.
    * layer decay (``decay_rate`` / ``layer_decay_rate``, ``decay_type``, ``num_layers``: the
      recipe of mmseg's ``LearningRateDecayOptimizerConstructor`` for ConvNeXt and of
      ``LayerDecayOptimizerConstructor`` for BEiT): with a :class:`RASSBackbone`, the learning
      rate of the backbone's layer k (see :func:`rass_layer_id`: ``conv_in``, down blocks, mid
      block, up blocks, L in all) is ``lr * decay_rate ** (L - k)``; the projections and
      everything outside the backbone keep ``lr`` (mmseg gives the head ``lr`` too). Every
      ``decay_type`` maps to this block-wise decay and the config's ``num_layers`` (written for
      the replaced backbone) is replaced by L; both are stated in one log line. Weight decay is
      0 for biases and 1-D parameters, as in mmseg. Any other backbone is handed to mmseg's
      ``LearningRateDecayOptimizerConstructor`` (which skips frozen parameters).
    * no ``paramwise_cfg``: one group of the trainable parameters (the default constructor
      would hand the frozen ones to the optimizer too).

    So a model-zoo config keeps its own optimizer and ``paramwise_cfg`` and only sets
    ``optim_wrapper=dict(constructor='RASSOptimWrapperConstructor')``.
    """

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.layer_decay = any(k in paramwise_cfg for k in LAYER_DECAY_KEYS)
        if self.layer_decay:
            if 'layer_decay_rate' in paramwise_cfg:  # BEiT's LayerDecayOptimizerConstructor
                paramwise_cfg.setdefault('decay_rate', paramwise_cfg.pop('layer_decay_rate'))
                paramwise_cfg.setdefault('decay_type', 'layer_wise_vit')
            other = sorted(set(paramwise_cfg) - {'decay_rate', 'decay_type', 'num_layers'})
            if other or 'decay_rate' not in paramwise_cfg:
                raise ValueError(f'RASSOptimWrapperConstructor: a layer-decay paramwise_cfg '
                                 f'needs decay_rate and takes only decay_type and num_layers '
                                 f'besides, got {dict(paramwise_cfg)}')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model):
        """Build the optim wrapper of ``model`` (see the class docstring)."""
        if self.paramwise_cfg:
            return super().__call__(model)
        return super().__call__(_TrainableParameters(getattr(model, 'module', model)))

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        """Add ``module``'s parameter groups to ``params`` (see the class docstring)."""
        if self.layer_decay and not prefix:
            self._add_layer_decay_params(params, module)
            return
        if not any(p.requires_grad for p in module.parameters()):
            return
        super().add_params(params, module, prefix=prefix, is_dcn_module=is_dcn_module)

    def _add_layer_decay_params(self, params, model):
        backbone = getattr(model, 'backbone', None)
        if not isinstance(backbone, RASSBackbone):
            LearningRateDecayOptimizerConstructor.add_params(self, params, model)
            return
        decay_rate = self.paramwise_cfg['decay_rate']
        if self.base_wd is None:
            raise ValueError('paramwise_cfg.decay_rate needs optimizer.weight_decay: set '
                             'optim_wrapper.optimizer.weight_decay (0 for none)')
        num_layers = 2 + len(backbone.unet.down_blocks) + len(backbone.unet.up_blocks)
        groups = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            layer_id = None
            if name.startswith('backbone.'):
                layer_id = rass_layer_id(name[len('backbone.'):], backbone.unet)
            scale = 1.0 if layer_id is None else decay_rate ** (num_layers - layer_id)
            no_decay = param.ndim == 1 or name.endswith('.bias')
            key = ('new' if layer_id is None else layer_id, no_decay)
            if key not in groups:
                groups[key] = dict(
                    params=[], lr=self.base_lr * scale, lr_scale=scale,
                    weight_decay=0.0 if no_decay else self.base_wd,
                    group_name=f'layer_{key[0]}_{"no_decay" if no_decay else "decay"}')
            groups[key]['params'].append(param)
        params.extend(groups.values())
        scales = sorted({(k[0], round(g['lr_scale'], 4)) for k, g in groups.items()},
                        key=lambda x: (x[0] == 'new', x[0] if x[0] != 'new' else 0))
        print_log(f'RASSOptimWrapperConstructor: layer decay {decay_rate} over the RASS '
                  f'backbone\'s {num_layers} blocks (conv_in, down, mid, up; decay_type '
                  f'{self.paramwise_cfg.get("decay_type", "layer_wise")!r} and num_layers '
                  f'{self.paramwise_cfg.get("num_layers")} of the config are for the replaced '
                  f'backbone), lr scales {scales}, projections and head x1',
                  logger='current')
