"""Checkpoints that hold only what training changes (frozen Stable Diffusion weights are rebuilt)."""
from mmengine.logging import print_log


def trainable_names(module):
    """Names of ``module``'s parameters that require grad."""
    return [n for n, p in module.named_parameters() if p.requires_grad]


def _frozen_entries(module):
    """State-dict names of the frozen parameters and persistent buffers of ``module``."""
    frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
    for mod_name, mod in module.named_modules():
        for name in mod._buffers:
            if name not in mod._non_persistent_buffers_set:
                frozen.append(f'{mod_name}.{name}' if mod_name else name)
    return frozen


def save_trainable_only(module, base_model):
    """Make ``module``'s state dict (hence every checkpoint) hold only trainable parameters.

    ``state_dict()`` drops the frozen parameters and buffers and records ``base_model`` (where
    the frozen weights come from: a local folder, or random configs with a seed) in the
    state-dict metadata. Loading fills the dropped entries from the module's own weights, so
    strict loading into a module built from the same config restores the full module; a
    checkpoint made on another base model is reported.

    Args:
        module (nn.Module): the module, already built with its final ``requires_grad`` flags.
        base_model (dict): description of the frozen weights' source (JSON-like).
    """

    def drop(mod, state_dict, prefix, local_metadata):
        for name in _frozen_entries(mod):
            state_dict.pop(prefix + name, None)
        local_metadata['base_model'] = base_model

    def fill(state_dict, prefix, local_metadata, *args):
        saved = local_metadata.get('base_model')
        if saved is not None and saved != base_model:
            print_log(f'{type(module).__name__}: the checkpoint was trained on base model {saved}, '
                      f'this model is built on {base_model}', logger='current', level=30)
        tensors = dict(module.named_parameters())
        tensors.update(module.named_buffers())
        for name in _frozen_entries(module):
            state_dict.setdefault(prefix + name, tensors[name].detach())

    module._register_state_dict_hook(drop)
    module._register_load_state_dict_pre_hook(fill)
