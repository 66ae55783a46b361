"""Synthetic checkpoints in the reference implementations' layouts (names and shapes derived
from Ka1Guan/RASS and cswry/OSEDiff), built on the meta device or with small real tensors;
the whole RASS checkpoint is in ``rass_reference_layout.py``."""

# Substrings the reference code greps parameter names with to choose LoRA targets
# (OSEDiff's UNet list; RASS's segmentation LoRA uses it without conv_out).
REFERENCE_UNET_PATTERNS = ['to_k', 'to_q', 'to_v', 'to_out.0', 'conv', 'conv1', 'conv2', 'conv_in',
                           'conv_shortcut', 'conv_out', 'proj_out', 'proj_in', 'ff.net.2',
                           'ff.net.0.proj']
REFERENCE_VAE_PATTERNS = ['conv1', 'conv2', 'conv_in', 'conv_shortcut', 'conv', 'conv_out', 'to_k',
                          'to_q', 'to_v', 'to_out.0']


def reference_unet_groups(unet, with_conv_out):
    """The reference's encoder / decoder / others LoRA module lists of a UNet."""
    groups = dict(encoder=[], decoder=[], others=[])
    for name, _ in unet.named_parameters():
        if 'bias' in name or 'norm' in name:
            continue
        if not any(p in name for p in REFERENCE_UNET_PATTERNS):
            continue
        module = name.replace('.weight', '')
        if 'down_blocks' in name or 'conv_in' in name:
            groups['encoder'].append(module)
        elif 'up_blocks' in name or 'conv_out' in name:
            groups['decoder'].append(module)
        else:
            groups['others'].append(module)
    if not with_conv_out:
        for modules in groups.values():
            if 'conv_out' in modules:
                modules.remove('conv_out')
    return groups


def reference_vae_modules(vae):
    """OSEDiff's VAE-encoder LoRA module list (with its repeats)."""
    modules = []
    for name, _ in vae.named_parameters():
        if 'bias' in name or 'norm' in name:
            continue
        for pattern in REFERENCE_VAE_PATTERNS:
            if pattern in name and 'encoder' in name:
                modules.append(name.replace('.weight', ''))
            elif 'quant_conv' in name and 'post_quant_conv' not in name:
                modules.append(name.replace('.weight', ''))
    return modules


def add_reference_adapters(model, groups, suffix, rank=4):
    """peft adapters ``default_<group><suffix>`` as the reference adds them (no lora_alpha)."""
    from peft import LoraConfig
    for group, modules in groups.items():
        model.add_adapter(LoraConfig(r=rank, init_lora_weights='gaussian', target_modules=modules),
                          adapter_name=f'default_{group}{suffix}')
    model.set_adapter([f'default_{g}{suffix}' for g in groups])


def osediff_pickle(unet, vae, vae_modules, rank=4):
    """The dict ``OSEDiff_gen.save_model`` writes, from models already carrying the adapters
    (``vae_modules``: the list :func:`reference_vae_modules` gave before the VAE adapter)."""
    groups = {g: [] for g in ('encoder', 'decoder', 'others')}
    for name, module in unet.named_modules():
        for group in groups:
            if f'default_{group}' in getattr(module, 'lora_A', {}):
                groups[group].append(name)
    return dict(
        rank_unet=rank, rank_vae=rank,
        unet_lora_encoder_modules=groups['encoder'], unet_lora_decoder_modules=groups['decoder'],
        unet_lora_others_modules=groups['others'],
        vae_lora_encoder_modules=vae_modules,
        state_dict_unet={k: v for k, v in unet.state_dict().items() if 'lora' in k or 'conv_in' in k},
        state_dict_vae={k: v for k, v in vae.state_dict().items() if 'lora' in k})
