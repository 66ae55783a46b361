"""The SCR LoRA file: the restorer's trained adapters, saved, loaded strictly and merged with peft.

File format (``format=mmseg_rass.scr_lora.v1``), a safetensors file holding

* the peft LoRA state dict of the UNet, as :func:`peft.get_peft_model_state_dict` returns it
  for a UNet carrying the adapter (keys relative to the UNet, without the adapter name, e.g.
  ``down_blocks.0.attentions.0.proj_in.lora_A.weight``);
* the full trained ``conv_in`` weights under ``conv_in.weight`` / ``conv_in.bias`` (when
  ``conv_in`` is itself a LoRA target these are its base-layer weights: the merged layer is
  these weights plus the LoRA update);
* optionally the VAE-encoder LoRA (OSEDiff trains one), keys relative to the VAE behind a
  ``vae.`` prefix (``vae.encoder.conv_in.lora_A.weight``);
* metadata ``format``, ``lora_config`` (JSON of ``LoraConfig.to_dict()``, sets as lists) and,
  with a VAE LoRA, ``vae_lora_config``.

Loading is strict: a file whose tensors do not match the adapters its configs describe on the
given model (missing or unexpected tensors) is rejected with one error naming the counts and
the first keys.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass

SCR_LORA_FORMAT = 'mmseg_rass.scr_lora.v1'

# The design's UNet LoRA targets (OSEDiff's list without ``conv_out``), peft suffix matching.
# On SD2.1 they select exactly the modules the RASS/OSEDiff code selects with its substring
# rule (tests/test_lora.py checks it).
UNET_LORA_TARGETS = [
    'to_q', 'to_k', 'to_v', 'to_out.0', 'conv', 'conv1', 'conv2', 'conv_in', 'conv_shortcut',
    'proj_in', 'proj_out', 'ff.net.0.proj', 'ff.net.2'
]
# OSEDiff's VAE-encoder LoRA patterns (substring match on encoder weights, plus ``quant_conv``).
VAE_LORA_PATTERNS = ('conv1', 'conv2', 'conv_in', 'conv_shortcut', 'conv', 'conv_out', 'to_k',
                     'to_q', 'to_v', 'to_out.0')
# OSEDiff and RASS build their LoraConfig without ``lora_alpha``: peft's default 8, i.e. a
# LoRA scale alpha / r = 2 at rank 4.
REFERENCE_LORA_ALPHA = 8

_PEFT_PREFIX = 'base_model.model.'
_CONV_IN_KEYS = ('conv_in.weight', 'conv_in.bias')
_VAE_PREFIX = 'vae.'


@dataclass
class SCRLora:
    """Contents of an SCR LoRA file.

    Attributes:
        lora_config (LoraConfig): The UNet adapter's config.
        lora_state (dict[str, Tensor]): UNet LoRA tensors, keys relative to the UNet.
        conv_in_state (dict[str, Tensor]): ``weight`` and ``bias`` of the trained ``conv_in``.
        vae_lora_config (LoraConfig | None): The VAE-encoder adapter's config, if any.
        vae_lora_state (dict[str, Tensor]): Its tensors, keys relative to the VAE.
    """
    lora_config: object
    lora_state: dict
    conv_in_state: dict
    vae_lora_config: object = None
    vae_lora_state: dict = None


def make_lora_config(rank=4, target_modules=UNET_LORA_TARGETS, init='gaussian',
                     alpha=REFERENCE_LORA_ALPHA):
    """A peft ``LoraConfig`` as OSEDiff / RASS build theirs.

    Args:
        rank (int): LoRA rank r. Default 4.
        target_modules (list[str]): Module name suffixes (or full names) to adapt.
        init (str | bool): ``init_lora_weights`` (``'gaussian'``: A ~ N(0, 1/r), B = 0).
        alpha (float): ``lora_alpha``; the update is scaled by alpha / r. Default 8 (peft's
            default, which the reference code uses: scale 2 at rank 4).

    Returns:
        peft.LoraConfig
    """
    from peft import LoraConfig
    return LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=init,
                      target_modules=list(target_modules))


def vae_encoder_lora_targets(vae):
    """OSEDiff's VAE-encoder LoRA targets: names of the encoder modules whose weight name
    contains one of :data:`VAE_LORA_PATTERNS` (norms and biases skipped), plus ``quant_conv``.

    Args:
        vae (AutoencoderKL): The VAE (without adapters).

    Returns:
        list[str]: Sorted module names relative to the VAE.
    """
    names = set()
    for name, _ in vae.named_parameters():
        if 'bias' in name or 'norm' in name:
            continue
        module = name.rsplit('.', 1)[0]
        if 'encoder' in name and any(p in name for p in VAE_LORA_PATTERNS):
            names.add(module)
        elif module == 'quant_conv':
            names.add(module)
    return sorted(names)


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


def lora_state_dict(model, adapter_name='default'):
    """LoRA tensors of a model carrying an adapter, keys relative to the model, on CPU.

    Args:
        model (nn.Module): A ``PeftModel``, or a model with an injected adapter
            (``unet.add_adapter(config)``).
        adapter_name (str): The adapter to save.

    Returns:
        dict[str, Tensor]: Keys without the adapter name (peft's saved layout).
    """
    from peft import get_peft_model_state_dict
    state = get_peft_model_state_dict(model, adapter_name=adapter_name)
    return {(k[len(_PEFT_PREFIX):] if k.startswith(_PEFT_PREFIX) else k): v.detach().cpu().contiguous()
            for k, v in state.items()}


def conv_in_state_dict(peft_unet):
    """The full ``conv_in`` weights of the UNet (the base layer when conv_in carries LoRA)."""
    conv_in = _unet_of(peft_unet).conv_in
    conv_in = getattr(conv_in, 'base_layer', conv_in)
    return {f'conv_in.{k}': v.detach().cpu().contiguous() for k, v in conv_in.state_dict().items()}


def save_scr_lora(path, peft_unet, lora_config, vae=None, vae_lora_config=None,
                  adapter_name='default', vae_adapter_name='default'):
    """Write the adapters of a UNet (and VAE) to an SCR LoRA file (see module docstring).

    Args:
        path (str): Output ``.safetensors`` path.
        peft_unet (nn.Module): The UNet carrying the trained adapter (``PeftModel`` or injected).
        lora_config (peft.LoraConfig): The UNet adapter's configuration.
        vae (nn.Module, optional): The VAE carrying a trained encoder adapter.
        vae_lora_config (peft.LoraConfig, optional): Its configuration (needed with ``vae``).
        adapter_name (str): Name of the UNet adapter.
        vae_adapter_name (str): Name of the VAE adapter.
    """
    conv_in = {k.split('.', 1)[1]: v for k, v in conv_in_state_dict(peft_unet).items()}
    scr = SCRLora(lora_config, lora_state_dict(peft_unet, adapter_name), conv_in)
    if vae is not None:
        if vae_lora_config is None:
            raise ValueError('save_scr_lora: a VAE adapter needs its `vae_lora_config`')
        scr.vae_lora_config = vae_lora_config
        scr.vae_lora_state = lora_state_dict(vae, vae_adapter_name)
    write_scr_lora(path, scr)


def write_scr_lora(path, scr):
    """Write an :class:`SCRLora` to a safetensors file (format ``mmseg_rass.scr_lora.v1``).

    Args:
        path (str): Output ``.safetensors`` path.
        scr (SCRLora): Configs and tensors.
    """
    from safetensors.torch import save_file
    tensors = {k: v.detach().cpu().contiguous() for k, v in scr.lora_state.items()}
    tensors.update({f'conv_in.{k}': v.detach().cpu().contiguous()
                    for k, v in scr.conv_in_state.items()})
    vae_metadata = {}
    if scr.vae_lora_config is not None:
        tensors.update({_VAE_PREFIX + k: v.detach().cpu().contiguous()
                        for k, v in scr.vae_lora_state.items()})
        vae_metadata['vae_lora_config'] = _config_to_json(scr.vae_lora_config)
    metadata = dict(format=SCR_LORA_FORMAT, lora_config=_config_to_json(scr.lora_config),
                    **vae_metadata)
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
        path (str): A file written by :func:`save_scr_lora`, ``tools/export_scr_lora.py`` or
            ``tools/convert_osediff_lora.py``.

    Returns:
        SCRLora: Configs and tensors (not yet checked against a model: see
        :func:`load_scr_lora_into`).
    """
    from safetensors import safe_open
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'SCR LoRA file {path} not found: write one from an SCR '
                                'checkpoint with `python tools/export_scr_lora.py CHECKPOINT '
                                'OUT.safetensors` (or convert an OSEDiff-style pickle with '
                                'tools/convert_osediff_lora.py)')
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
        raise ValueError(f'SCR LoRA file {path} lacks {missing}: it holds no trained conv_in')
    conv_in = {k.split('.', 1)[1]: tensors.pop(k) for k in _CONV_IN_KEYS}
    vae_state = {k[len(_VAE_PREFIX):]: tensors.pop(k) for k in list(tensors)
                 if k.startswith(_VAE_PREFIX)}
    vae_config = metadata.get('vae_lora_config')
    if bool(vae_state) != (vae_config is not None):
        raise ValueError(f'SCR LoRA file {path}: {len(vae_state)} VAE LoRA tensors but '
                         f'{"a" if vae_config else "no"} `vae_lora_config` entry; the file is '
                         'inconsistent, write it again')
    return SCRLora(_config_from_json(metadata['lora_config']), tensors, conv_in,
                   _config_from_json(vae_config) if vae_config else None, vae_state)


def check_keys(expected, provided, what, source, limit=5):
    """Raise one error when two key sets differ.

    Args:
        expected (Iterable[str]): Keys the target needs.
        provided (Iterable[str]): Keys the source holds.
        what (str): The target, for the message (``'the UNet adapter'``).
        source (str): The source, for the message (a file name).
        limit (int): How many keys of each kind the message shows.

    Raises:
        ValueError: Naming the number of missing and unexpected keys and the first of each.
    """
    expected, provided = set(expected), set(provided)
    missing, unexpected = sorted(expected - provided), sorted(provided - expected)
    if missing or unexpected:
        raise ValueError(
            f'{source} does not fit {what}: {len(missing)} missing tensors'
            f'{" (first: " + ", ".join(missing[:limit]) + ")" if missing else ""} and '
            f'{len(unexpected)} unexpected tensors'
            f'{" (first: " + ", ".join(unexpected[:limit]) + ")" if unexpected else ""}; was it '
            'made for another architecture, LoRA rank or target list?')


def _adapter_keys(model, adapter_name, prefix=''):
    """LoRA parameter shapes of ``adapter_name`` in ``model``, keyed in peft's saved layout."""
    tag = f'.{adapter_name}.'
    keys = {}
    for name, param in model.named_parameters():
        if '.lora_' in name and tag in name:
            name = name.replace(tag, '.')
            keys[name[len(prefix):] if name.startswith(prefix) else name] = tuple(param.shape)
    return keys


def check_shapes(expected, provided, what, source, limit=5):
    """Raise one error listing tensors whose shape differs from the target's.

    Args:
        expected (dict[str, tuple]): Key -> shape the target needs.
        provided (dict[str, Tensor]): Key -> tensor.
        what (str): The target, for the message.
        source (str): The source, for the message.
        limit (int): How many mismatches the message shows.
    """
    wrong = [f'{k} {tuple(v.shape)} vs {expected[k]}' for k, v in sorted(provided.items())
             if k in expected and tuple(v.shape) != tuple(expected[k])]
    if wrong:
        raise ValueError(f'{source} does not fit {what}: {len(wrong)} tensors have another shape '
                         f'(first: {"; ".join(wrong[:limit])}); was it made for another '
                         'architecture or LoRA rank?')


def attach_lora(model, lora_config, lora_state, adapter_name, source, what):
    """Add an adapter to a model in place and load its tensors strictly.

    Args:
        model (nn.Module): A diffusers model (``add_adapter``) without this adapter.
        lora_config (LoraConfig): The adapter's config.
        lora_state (dict[str, Tensor]): Its tensors in peft's saved layout.
        adapter_name (str): Name to register.
        source (str): Where the tensors come from (for errors).
        what (str): What is adapted (for errors).

    Returns:
        nn.Module: ``model``.
    """
    from peft import set_peft_model_state_dict
    model.add_adapter(lora_config, adapter_name=adapter_name)
    expected = _adapter_keys(model, adapter_name)
    check_keys(expected, lora_state, what, source)
    check_shapes(expected, lora_state, what, source)
    set_peft_model_state_dict(model, lora_state, adapter_name=adapter_name)
    return model


def _load_conv_in(conv_in, state, source):
    conv_in = getattr(conv_in, 'base_layer', conv_in)
    expected = {k: tuple(v.shape) for k, v in conv_in.state_dict().items()}
    check_keys(expected, state, 'the UNet conv_in', source)
    check_shapes(expected, state, 'the UNet conv_in', source)
    conv_in.load_state_dict(state)


def load_scr_lora_into(unet, scr, adapter_name='default', vae=None, source='SCR LoRA'):
    """Give a plain UNet (and VAE) the SCR adapters in place, with their trained weights.

    Args:
        unet (UNet2DConditionModel): A UNet without adapters, same architecture as at training.
        scr (SCRLora): As returned by :func:`load_scr_lora`.
        adapter_name (str): Adapter name to register (UNet and VAE).
        vae (AutoencoderKL, optional): Receives the VAE-encoder adapter when the file has one.
        source (str): Name of the file, for errors.

    Returns:
        UNet2DConditionModel: ``unet`` itself, carrying the adapter.
    """
    _load_conv_in(unet.conv_in, scr.conv_in_state, source)
    attach_lora(unet, scr.lora_config, scr.lora_state, adapter_name, source, 'the UNet adapter')
    if vae is not None and scr.vae_lora_config is not None:
        attach_lora(vae, scr.vae_lora_config, scr.vae_lora_state, adapter_name, source,
                    'the VAE-encoder adapter')
    return unet


def merge_scr_lora(unet, path):
    """Merge the SCR LoRA file into a plain UNet (peft ``merge_and_unload``).

    ``conv_in`` is replaced by the trained one and the LoRA update is merged into every target.
    A VAE-encoder LoRA in the file is not used (RASS merges the UNet adapter only).

    Args:
        unet (UNet2DConditionModel): A UNet without adapters (e.g. SD2.1-base weights).
        path (str): SCR LoRA file.

    Returns:
        UNet2DConditionModel: A plain diffusers UNet (no peft layers) restoring like the SCR one.
    """
    from peft import get_peft_model, set_peft_model_state_dict
    scr = load_scr_lora(path)
    _load_conv_in(unet.conv_in, scr.conv_in_state, str(path))
    peft_model = get_peft_model(unet, scr.lora_config)
    expected = _adapter_keys(peft_model, 'default', _PEFT_PREFIX)
    check_keys(expected, scr.lora_state, 'the UNet adapter', str(path))
    check_shapes(expected, scr.lora_state, 'the UNet adapter', str(path))
    set_peft_model_state_dict(peft_model, {_PEFT_PREFIX + k: v for k, v in scr.lora_state.items()})
    return peft_model.merge_and_unload()
