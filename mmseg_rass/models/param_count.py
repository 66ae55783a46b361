"""Trainable and total parameters of a model config, counted on the ``meta`` device.

No memory, no weights read: a ``RASSBackbone`` (or SegSR's ``SRDM``) that points to a local
SD2.1-base folder is built from the folder's ``config.json`` files, or from the built-in
SD2.1-base architecture when the folder is absent; an SCR LoRA file is not read (merging it
changes no parameter count). Used by ``tools/count_params.py`` and the LQ protocol
(``tools/lq_protocol.py``).
"""
import contextlib
import copy
import json
import os.path as osp

import torch

RASS_PARTS = (('LoRA (segmentation)', '.lora_'), ('conv_in', 'unet.conv_in.'),
              ('projections', 'projections.'), ('UNet', 'unet.'), ('VAE encoder', 'vae_'))
SRDM_PARTS = (('LoRA', '.lora_'), ('conv_in (widened)', 'unet.conv_in.'), ('UNet', 'unet.'),
              ('VAE', 'vae.'))


def _diffusers_config(path):
    with open(path, encoding='utf-8') as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith('_')}


def rass_arch_from_folder(folder):
    """``arch`` dict of a local SD folder from its config files (None if the folder is absent)."""
    files = {k: osp.join(folder, k, 'config.json') for k in ('unet', 'vae', 'text_encoder')}
    if not all(osp.isfile(f) for f in files.values()):
        return None
    arch = {k: _diffusers_config(f) for k, f in files.items()}
    arch['text_encoder'] = {
        k: v for k, v in arch['text_encoder'].items()
        if k in ('vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
                 'num_attention_heads', 'max_position_embeddings', 'projection_dim',
                 'hidden_act')
    }
    return arch


def prepare_meta_cfg(cfg):
    """Point a RASS backbone / SRDM at an architecture instead of weights; return notes."""
    notes = []
    srdm = cfg.model.get('srdm') or {}
    if srdm.get('type') == 'SRDM' and srdm.get('pretrained_model_path') is not None:
        folder = srdm.pop('pretrained_model_path')
        arch = rass_arch_from_folder(folder)
        srdm['arch'] = arch or 'sd21'
        notes.append(f'SRDM: architecture from {folder}' if arch else
                     f'SRDM: {folder} not found, built-in SD2.1-base architecture used')
    backbone = cfg.model.get('backbone') or {}
    if backbone.get('type') != 'RASSBackbone':
        return notes
    folder = backbone.pop('pretrained_model_path', None)
    if folder is not None:
        arch = rass_arch_from_folder(folder)
        backbone['arch'] = arch or 'sd21'
        notes.append(f'RASS backbone: architecture from {folder}' if arch else
                     f'RASS backbone: {folder} not found, built-in SD2.1-base architecture used')
    from .prompts import drop_tag_prompts
    if drop_tag_prompts(backbone):
        notes.append('RASS backbone: tag prompts not read (a tag cache holds no parameters)')
    if backbone.get('scr_lora'):
        notes.append(f'RASS backbone: SCR LoRA {backbone["scr_lora"]} not read (merged into '
                     'the frozen UNet, no parameter change)')
        backbone['scr_lora'] = None
    return notes


@contextlib.contextmanager
def _linspace_on_cpu():
    """``torch.linspace`` on the CPU: backbones with stochastic depth (MiT, Swin) read its values
    with ``.item()`` while being built, which meta tensors cannot do."""
    linspace = torch.linspace

    def cpu_linspace(*args, **kwargs):
        kwargs.setdefault('device', 'cpu')
        return linspace(*args, **kwargs)

    torch.linspace = cpu_linspace
    try:
        yield
    finally:
        torch.linspace = linspace


def count(model):
    """Rows ``(component, trainable, total)`` and the total row; RASS backbones and SRDMs
    subdivided."""
    from .backbones import RASSBackbone
    from .restorers import SRDM
    rows = []
    for name, child in model.named_children():
        params = list(child.named_parameters())
        if not params:
            continue
        parts = {RASSBackbone: RASS_PARTS, SRDM: SRDM_PARTS}.get(type(child))
        if parts:
            left = dict(params)
            for label, key in parts:
                part = {n: p for n, p in left.items() if key in n}
                for n in part:
                    left.pop(n)
                rows.append((f'{name}: {label}', *_sizes(part.values())))
            if left:
                rows.append((f'{name}: other', *_sizes(left.values())))
        rows.append((name, *_sizes(p for _, p in params)))
    return rows, _sizes(model.parameters())


def _sizes(params):
    """(trainable, total) element counts of an iterable of parameters."""
    params = list(params)
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def count_config(cfg):
    """Count the parameters of a config's model, built on the meta device.

    Args:
        cfg (Config): a config with ``model`` (left untouched).

    Returns:
        tuple: rows ``(component, trainable, total)``, ``(trainable, total)`` of the model and
        the notes of :func:`prepare_meta_cfg`.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = copy.deepcopy(cfg)
    notes = prepare_meta_cfg(cfg)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    with torch.device('meta'), _linspace_on_cpu():
        model = MODELS.build(cfg.model)
    rows, sizes = count(model)
    return rows, sizes, notes
