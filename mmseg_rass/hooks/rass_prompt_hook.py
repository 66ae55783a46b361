"""``RASSPromptHook``: hand each batch's data samples to RASS backbones with per-image prompts."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


def _data_samples(args, kwargs):
    if 'data_samples' in kwargs:
        return kwargs['data_samples']
    return args[1] if len(args) > 1 else None


def attach_prompt_hooks(model):
    """Make ``model``'s forward pass its data samples to every ``RASSBackbone`` inside it.

    mmseg segmentors call ``backbone(inputs)`` without the data samples, which per-image prompt
    sources (``gt``, ``tags``) need: a forward pre-hook on the segmentor gives them to
    :meth:`RASSBackbone.set_batch_prompts`, a forward hook clears them afterwards. Idempotent.

    Args:
        model (nn.Module): The segmentor (unwrapped).

    Returns:
        int: The number of RASS backbones found.
    """
    from ..models.backbones import RASSBackbone
    backbones = [m for m in model.modules() if isinstance(m, RASSBackbone)]
    if backbones and not getattr(model, '_rass_prompt_hooks', False):

        def before(module, args, kwargs):
            samples = _data_samples(args, kwargs)
            for backbone in backbones:
                backbone.set_batch_prompts(samples)

        def after(module, args, kwargs, output):
            for backbone in backbones:
                backbone.clear_batch_prompts()

        model.register_forward_pre_hook(before, with_kwargs=True)
        model.register_forward_hook(after, with_kwargs=True)
        model._rass_prompt_hooks = True
    return len(backbones)


@HOOKS.register_module()
class RASSPromptHook(Hook):
    """Before running, let the model pass each batch's data samples to its RASS backbones.

    Needed when a ``RASSBackbone`` uses a per-image prompt (``prompt='gt'`` or
    ``dict(type='tags', cache=...)``); harmless otherwise. See :func:`attach_prompt_hooks`.
    """

    priority = 'NORMAL'

    def before_run(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not attach_prompt_hooks(model):
            raise TypeError('RASSPromptHook: the model has no RASSBackbone')
