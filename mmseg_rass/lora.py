"""The SCR LoRA file: the restorer's trained UNet adapter, saved and merged with peft's own calls.

File format (``format=mmseg_rass.scr_lora.v1``), a safetensors file holding

* the peft LoRA state dict of the UNet, as :func:`peft.get_peft_model_state_dict` returns it
  for a UNet carrying the adapter (keys relative to the UNet, without the adapter name, e.g.
  ``down_blocks.0.attentions.0.proj_in.lora_A.weight``);
* the full trained ``conv_in`` weights under ``conv_in.weight`` / ``conv_in.bias`` (when
  ``conv_in`` is itself a LoRA target these are its base-layer weights: the merged layer is
  these weights plus the LoRA update);
* metadata ``format`` and ``lora_config`` (JSON of ``LoraConfig.to_dict()``, sets as lists).
"""
import json
import os
import os.path as osp

SCR_LORA_FORMAT = 'mmseg_rass.scr_lora.v1'

# The design's UNet LoRA targets (OSEDiff's list without ``conv_out``), peft suffix matching.
UNET_LORA_TARGETS = [
    'to_q', 'to_k', 'to_v', 'to_out.0', 'conv', 'conv1', 'conv2', 'conv_in', 'conv_shortcut',
    'proj_in', 'proj_out', 'ff.net.0.proj', 'ff.net.2'
]

_PEFT_PREFIX = 'base_model.model.'
_CONV_IN_KEYS = ('conv_in.weight', 'conv_in.bias')


def make_lora_config(rank=4, target_modules=UNET_LORA_TARGETS, init='gaussian'):
    """The peft ``LoraConfig`` of the SCR UNet adapter.

    Args:
        rank (int): LoRA rank r; ``lora_alpha`` is set to r (scale 1). Default 4.
        target_modules (list[str]): Module name suffixes to adapt.
        init (str | bool): ``init_lora_weights`` (``'gaussian'``: A ~ N(0, 1/r), B = 0).

    Returns:
        peft.LoraConfig
    """
    from peft import LoraConfig
    return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=init,
                      target_modules=list(target_modules))


def _config_to_json(lora_config):
    def plain(value):
        if isinstance(value, (set, frozenset)):
            return sorted(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if hasattr(value, 'value') and not isinstance(value, (int, float, str, bool)):
            return value.value  # enums (peft_type, task_type)
        return value

    return json.dumps(plain(lora_config.to_dict()))


def _config_from_json(text):
    from peft import LoraConfig
    fields = json.loads(text)
    fields.pop('peft_type', None)
    known = set(LoraConfig.__dataclass_fields__)
    return LoraConfig(**{k: v for k, v in fields.items() if k in known})


def _unet_of(peft_unet):
    """The UNet inside a peft ``PeftModel`` (or the UNet itself when it carries the adapter)."""
    get_base = getattr(peft_unet, 'get_base_model', None)
    return get_base() if callable(get_base) and hasattr(peft_unet, 'base_model') else peft_unet


def lora_state_dict(peft_unet):
    """LoRA tensors of a UNet carrying the adapter, keys relative to the UNet, on CPU.

    Args:
        peft_unet (nn.Module): A ``PeftModel`` around the UNet, or a UNet with an injected
            adapter (``unet.add_adapter(config)``).

    Returns:
        dict[str, Tensor]
    """
    from peft import get_peft_model_state_dict
    state = get_peft_model_state_dict(peft_unet)
    return {(k[len(_PEFT_PREFIX):] if k.startswith(_PEFT_PREFIX) else k): v.detach().cpu().contiguous()
            for k, v in state.items()}


def conv_in_state_dict(peft_unet):
    """The full ``conv_in`` weights of the UNet (the base layer when conv_in carries LoRA)."""
    conv_in = _unet_of(peft_unet).conv_in
    conv_in = getattr(conv_in, 'base_layer', conv_in)
    return {f'conv_in.{k}': v.detach().cpu().contiguous() for k, v in conv_in.state_dict().items()}


def save_scr_lora(path, peft_unet, lora_config):
    """Write the SCR LoRA file (format ``mmseg_rass.scr_lora.v1``, see module docstring).

    Args:
        path (str): Output ``.safetensors`` path.
        peft_unet (nn.Module): The UNet carrying the trained adapter (``PeftModel`` or injected).
        lora_config (peft.LoraConfig): The adapter's configuration.
    """
    from safetensors.torch import save_file
    tensors = lora_state_dict(peft_unet)
    tensors.update(conv_in_state_dict(peft_unet))
    metadata = dict(format=SCR_LORA_FORMAT, lora_config=_config_to_json(lora_config))
    # written next to the target, then renamed over it: an interrupted save never leaves a
    # half-written file under the final name (whatever the safetensors version does)
    tmp = f'{path}.{os.getpid()}.tmp'
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, str(path))
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def load_scr_lora(path):
    """Read an SCR LoRA file.

    Args:
        path (str): A file written by :func:`save_scr_lora` / ``tools/export_scr_lora.py``.

    Returns:
        tuple[LoraConfig, dict[str, Tensor], dict[str, Tensor]]: The config, the LoRA state dict
        (keys relative to the UNet) and the ``conv_in`` state dict (``weight``, ``bias``).
    """
    from safetensors import safe_open
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'SCR LoRA file {path} not found: write one from an SCR '
                                'checkpoint with `python tools/export_scr_lora.py CHECKPOINT OUT.safetensors`')
    try:
        with safe_open(path, framework='pt') as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for foreign files
        raise ValueError(f'{path} is not a safetensors file ({err}); expected an SCR LoRA file '
                         'written by tools/export_scr_lora.py') from err
    if metadata.get('format') != SCR_LORA_FORMAT or 'lora_config' not in metadata:
        raise ValueError(f'{path} is not an SCR LoRA file: metadata format is '
                         f'{metadata.get("format")!r}, expected {SCR_LORA_FORMAT!r} with a '
                         '`lora_config` entry (write it with tools/export_scr_lora.py)')
    missing = [k for k in _CONV_IN_KEYS if k not in tensors]
    if missing:
        raise ValueError(f'SCR LoRA file {path} lacks {missing}')
    conv_in = {k.split('.', 1)[1]: tensors.pop(k) for k in _CONV_IN_KEYS}
    return _config_from_json(metadata['lora_config']), tensors, conv_in


def load_scr_lora_into(unet, lora_config, lora_state, conv_in_state, adapter_name='default'):
    """Give a plain UNet the SCR adapter in place (``unet.add_adapter``) and its trained weights.

    Args:
        unet (UNet2DConditionModel): A UNet without adapters, same architecture as at training.
        lora_config, lora_state, conv_in_state: As returned by :func:`load_scr_lora`.
        adapter_name (str): Adapter name to register.

    Returns:
        UNet2DConditionModel: ``unet`` itself, carrying the adapter.
    """
    from peft import set_peft_model_state_dict
    unet.conv_in.load_state_dict(conv_in_state)
    unet.add_adapter(lora_config, adapter_name=adapter_name)
    result = set_peft_model_state_dict(unet, lora_state, adapter_name=adapter_name)
    _check_load(result, 'the UNet')
    return unet


def _check_load(result, what):
    unexpected = [k for k in getattr(result, 'unexpected_keys', []) if 'lora_' in k]
    if unexpected:
        raise ValueError(f'SCR LoRA does not fit {what}: {len(unexpected)} unexpected keys, e.g. '
                         f'{unexpected[:3]} (was it trained with a different UNet architecture?)')


def merge_scr_lora(unet, path):
    """Merge the SCR LoRA file into a plain UNet (peft ``merge_and_unload``).

    ``conv_in`` is replaced by the trained one and the LoRA update is merged into every target.

    Args:
        unet (UNet2DConditionModel): A UNet without adapters (e.g. SD2.1-base weights).
        path (str): SCR LoRA file.

    Returns:
        UNet2DConditionModel: A plain diffusers UNet (no peft layers) restoring like the SCR one.
    """
    from peft import get_peft_model, set_peft_model_state_dict
    lora_config, lora_state, conv_in_state = load_scr_lora(path)
    unet.conv_in.load_state_dict(conv_in_state)
    peft_model = get_peft_model(unet, lora_config)
    result = set_peft_model_state_dict(
        peft_model, {_PEFT_PREFIX + k: v for k, v in lora_state.items()})
    _check_load(result, 'the UNet')
    return peft_model.merge_and_unload()
