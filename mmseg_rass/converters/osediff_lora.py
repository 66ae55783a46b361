"""OSEDiff / SCR pickle → SCR LoRA file.

OSEDiff's ``OSEDiff_gen.save_model`` (and the RASS code's ``load_ckpt_from_state_dict``, which
reads the SCR weights it ships as ``scr.pkl``) use one dict::

    rank_unet, rank_vae                 int
    unet_lora_encoder_modules           list[str]  UNet module names, three disjoint groups,
    unet_lora_decoder_modules                      each a peft adapter (default_encoder,
    unet_lora_others_modules                       default_decoder, default_others)
    state_dict_unet                     {name: tensor}: the UNet state-dict entries containing
                                        "lora" or "conv_in" (conv_in.base_layer.*, LoRA A/B)
    vae_lora_encoder_modules            list[str]  VAE modules of the adapter default_encoder
    state_dict_vae                      {name: tensor}: the VAE LoRA entries

The LoraConfigs are built without ``lora_alpha``: peft's default 8 (scale 2 at rank 4).
"""
from ..lora import REFERENCE_LORA_ALPHA, SCRLora, check_keys, make_lora_config
from .common import KeyMapper

UNET_GROUPS = dict(encoder='unet_lora_encoder_modules', decoder='unet_lora_decoder_modules',
                   others='unet_lora_others_modules')
REQUIRED = ('rank_unet', 'state_dict_unet', *UNET_GROUPS.values())
VAE_KEYS = ('rank_vae', 'vae_lora_encoder_modules', 'state_dict_vae')


def _group_checked(groups):
    """Map ``X.lora_{A,B}.default_<group>.weight`` → ``X.lora_{A,B}.weight``, checking that X
    belongs to that group's module list."""

    def target(match):
        module, group = match.group(1), match.group(3)
        if module not in groups[group]:
            raise ValueError(f'{module} carries adapter default_{group} but is not in '
                             f'{UNET_GROUPS[group]}')
        return f'{module}.lora_{match.group(2)}.weight'

    return target


def convert_osediff_lora(ckpt, source='checkpoint', lora_alpha=REFERENCE_LORA_ALPHA):
    """Convert an OSEDiff / SCR pickle (already loaded) into an :class:`SCRLora`.

    Args:
        ckpt (dict): The pickle's contents (see module docstring).
        source (str): Name of the file, for errors.
        lora_alpha (float): ``lora_alpha`` the reference used (peft default 8).

    Returns:
        tuple[SCRLora, dict]: The adapters and a report (tensor counts, the top-level entries
        consumed as configuration).
    """
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED):
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f'{source} is not an OSEDiff/SCR pickle: it needs {list(REQUIRED)}, '
                         f'found {found}')
    has_vae = any(k in ckpt for k in VAE_KEYS)
    if has_vae and not all(k in ckpt for k in VAE_KEYS):
        raise ValueError(f'{source}: a VAE LoRA needs all of {list(VAE_KEYS)}')
    extra = sorted(set(ckpt) - set(REQUIRED) - set(VAE_KEYS))
    if extra:
        raise ValueError(f'{source}: unknown top-level entries {extra}')

    groups = {g: set(ckpt[k]) for g, k in UNET_GROUPS.items()}
    modules = sorted(set().union(*groups.values()))
    if sum(len(g) for g in groups.values()) != len(modules):
        raise ValueError(f'{source}: the three UNet LoRA module lists overlap')
    unet = KeyMapper(
        rules=[(r'(.+)\.lora_(A|B)\.default_(encoder|decoder|others)\.weight',
                _group_checked(groups)),
               (r'conv_in\.(?:base_layer\.)?(weight|bias)', r'conv_in.\1')],
        drops=[], source=f'{source} state_dict_unet')
    mapped, _ = unet(ckpt['state_dict_unet'])
    conv_in = {k.split('.', 1)[1]: mapped.pop(k) for k in list(mapped) if k.startswith('conv_in.')
               and '.lora_' not in k}
    check_keys(['weight', 'bias'], conv_in, 'the UNet conv_in', source)
    expected = {f'{m}.lora_{ab}.weight' for m in modules for ab in 'AB'}
    check_keys(expected, mapped, 'its own UNet module lists', source)
    scr = SCRLora(make_lora_config(int(ckpt['rank_unet']), modules, alpha=lora_alpha),
                  mapped, conv_in)
    report = dict(unet_lora_tensors=len(mapped), conv_in_tensors=len(conv_in),
                  config_entries=sorted(k for k in ckpt if not k.startswith('state_dict')))
    if has_vae:
        vae_modules = sorted(set(ckpt['vae_lora_encoder_modules']))  # OSEDiff lists repeats
        vae = KeyMapper(
            rules=[(r'(.+)\.lora_(A|B)\.default_encoder\.weight', r'\1.lora_\2.weight')],
            drops=[], source=f'{source} state_dict_vae')
        vae_state, _ = vae(ckpt['state_dict_vae'])
        check_keys({f'{m}.lora_{ab}.weight' for m in vae_modules for ab in 'AB'}, vae_state,
                   'its own VAE module list', source)
        scr.vae_lora_config = make_lora_config(int(ckpt['rank_vae']), vae_modules,
                                               alpha=lora_alpha)
        scr.vae_lora_state = vae_state
        report['vae_lora_tensors'] = len(vae_state)
    return scr, report


def verify_scr_lora(scr, arch='sd21', source='SCR LoRA'):
    """Attach the adapters to a UNet (and VAE) of ``arch`` built on the meta device: raises
    one error if any tensor is missing, unexpected or of another shape.

    Args:
        scr (SCRLora): The adapters.
        arch (str | dict): ``'sd21'`` (SD2.1-base), ``'tiny'`` or constructor arguments.
        source (str): Name of the file, for errors.
    """
    import warnings

    import torch

    from ..lora import load_scr_lora_into
    from ..models.diffusion import build_unet, build_vae, resolve_arch
    configs = resolve_arch('verify_scr_lora', None, arch)
    with torch.device('meta'):
        unet = build_unet(config=configs['unet'])
        vae = build_vae(config=configs['vae'])
    with warnings.catch_warnings():  # loading into meta tensors copies nothing (by design)
        warnings.filterwarnings('ignore', message='.*meta parameter.*')
        load_scr_lora_into(unet, scr, vae=vae, source=source)
