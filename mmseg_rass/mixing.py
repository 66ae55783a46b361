"""Mix a method of this project into any mmseg config: the config file a user would write.

``mix_config('mmseg::ocrnet/ocrnet_hr18_4xb2-40k_cityscapes-512x1024.py', 'rass')`` returns the
text of a config that inherits the given one through ``_base_`` and states only the
differences, derived from the model itself (built on the ``meta`` device: no weights, no
memory):

* **rass** — the backbone becomes a ``RASSBackbone``. ``out_strides`` gives each output index
  the stride of the replaced backbone's output there; a level no head reads takes the stride of
  the nearest read level (so no projection is left without a gradient), and is left out when
  that gives the default (4, 8, 16, 32). A neck that keeps the strides (FPN) stays, with the new
  widths; a neck that builds a pyramid from one scale (BEiT's ``Feature2Pyramid``, ViT's
  ``MultiLevelNeck``) goes, the backbone giving the pyramid's strides itself. Heads get the new
  widths (``in_channels``, DeepLabV3+'s ``c1_in_channels``, K-Net's
  ``kernel_generate_head``); heads given as a list (OCRNet's cascade) are restated whole,
  because mmengine cannot merge into list items. The input is RGB in [-1, 1], ``pretrained=``
  (weights of the replaced backbone) is dropped, the config's optimizer keeps everything but
  its constructor (``RASSOptimWrapperConstructor``, which skips the frozen Stable Diffusion),
  and ``custom_imports`` loads the plug-in (imports the replaced backbone alone needed, e.g.
  ``mmpretrain`` for ConvNeXt, are dropped).
* **spt** — SPT units (``SPTNeck``, as wide as the backbone's outputs) on the frozen model
  (``SAMPriorEncoderDecoder``); its weights come from ``load_from``.
* **spd** — the model as the student of ``SAMDistillEncoderDecoder``; ``SAMDistillHook`` gets a
  teacher with SPF units (as wide as what the head reads) and a copy of the decode head.

SPT and SPD need SAM priors in the data pipelines (``LoadSAMPriors``, see
``docs/sam_priors.md``); the written file says so. ``tools/mix_config.py`` writes the file;
``tools/check_zoo_mixing.py`` builds and trains a step of it on the model zoo.
"""
import os.path as osp
import warnings
from dataclasses import dataclass

from .errors import ConfigError

METHODS = ('rass', 'spt', 'spd')
SD21_FOLDER = 'checkpoints/stable-diffusion-2-1-base'
VGG_WEIGHTS = 'checkpoints/vgg16-397923af.pth'
PLUGIN_IMPORTS = "custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)"
RASS_DEFAULT_STRIDES = (4, 8, 16, 32)
RASS_DEFAULT_CHANNELS = 512


class MixError(ConfigError):
    """A config that cannot take the method, or a missing piece, reported as one line."""


class _Raw(str):
    """Python source to put into the config text as it is (e.g. ``'[64] * 4'``)."""


def _source(value):
    """Python source of a config value: dicts as ``dict(...)``, sequences as lists/tuples."""
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            return 'dict(' + ', '.join(f'{k}={_source(v)}' for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{k!r}: {_source(v)}' for k, v in value.items()) + '}'
    if isinstance(value, list):
        return '[' + ', '.join(_source(v) for v in value) + ']'
    if isinstance(value, tuple):
        return '(' + ', '.join(_source(v) for v in value) + (',)' if len(value) == 1 else ')')
    return repr(value)


def _widths(old, width):
    """``old`` channel setting (int or list) at ``width``: ``64`` or ``[64] * 4``."""
    if isinstance(old, (list, tuple)):
        return _Raw(f'[{width}] * {len(old)}')
    return width


@dataclass
class Mixed:
    """A mixed config: its file text and what the edit does besides the standard parts."""
    text: str
    notes: list


@dataclass
class _ZooModel:
    """What the edit needs to know of a zoo model (built on the meta device)."""
    cfg: object
    backbone_strides: list
    backbone_channels: list  # None when the backbone could not be built
    neck_strides: list  # None without a neck
    neck_channels: list
    read: set  # output indices some head reads; None: every one


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def head_levels(head):
    """Indices of the feature levels a built decode head reads (None: every level)."""
    inner = getattr(head, 'kernel_generate_head', head)
    index = getattr(inner, 'in_index', None)
    if index is None:
        return None
    read = {index} if isinstance(index, int) else set(index)
    if getattr(inner, 'c1_bottleneck', None) is not None:  # DeepLabV3+ also reads inputs[0]
        read.add(0)
    return read


def read_levels(heads):
    """Indices of the feature levels some of the built ``heads`` reads (None: every level)."""
    read = set()
    for head in heads:
        levels = head_levels(head)
        if levels is None:
            return None
        read |= levels
    return read


def _input_size(cfg):
    size = cfg.get('crop_size') or (cfg.model.get('data_preprocessor') or {}).get('size')
    return tuple(size) if size else (512, 512)


def inspect_zoo(cfg, backbone_strides=None):
    """Build a config's model on the meta device and read its strides, widths and head levels.

    Args:
        cfg (Config): the zoo config.
        backbone_strides (Sequence[int], optional): the strides of the backbone's outputs, for a
            backbone that cannot be built here (its package is not installed).
    """
    import torch
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from .models.param_count import _linspace_on_cpu
    init_default_scope('mmseg')
    model_cfg = cfg.model
    size = _input_size(cfg)
    with torch.device('meta'), _linspace_on_cpu(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        heads = [MODELS.build(h) for key in ('decode_head', 'auxiliary_head')
                 for h in _as_list(model_cfg.get(key))]
        try:
            features = MODELS.build(model_cfg.backbone)(torch.empty(1, 3, *size))
        except Exception as e:
            if backbone_strides is None:
                raise MixError(
                    f'the backbone {model_cfg.backbone.get("type")} of the config cannot be built '
                    f'here to read its output strides ({type(e).__name__}: '
                    f'{" ".join(str(e).split())[:200]}): install its package, or give its '
                    'strides (--backbone-strides 4 8 16 32)') from None
            features = None
        strides = list(backbone_strides) if features is None else [
            size[0] // f.shape[-2] for f in features]
        neck_strides = neck_channels = None
        if model_cfg.get('neck'):
            if features is None:
                raise MixError(f'the config has a neck ({model_cfg.neck.get("type")}) and its '
                               'backbone cannot be built here: install the backbone\'s package')
            outs = MODELS.build(model_cfg.neck)(list(features))
            neck_strides = [size[0] // f.shape[-2] for f in outs]
            neck_channels = [f.shape[1] for f in outs]
    return _ZooModel(cfg=cfg, backbone_strides=strides,
                     backbone_channels=None if features is None else
                     [f.shape[1] for f in features],
                     neck_strides=neck_strides, neck_channels=neck_channels,
                     read=read_levels(heads))


def rass_out_strides(strides, read):
    """The ``out_strides`` of a RASS backbone replacing one with output ``strides`` whose
    levels ``read`` are read: an unread level keeps its stride if a read level has it, else
    takes the stride of the nearest read level (the finer one on a tie)."""
    if read is None:
        return tuple(strides)
    kept = {strides[i] for i in read}
    out = []
    for i, stride in enumerate(strides):
        if i in read or stride in kept:
            out.append(stride)
        else:
            nearest = min(read, key=lambda j: (abs(j - i), j))
            out.append(strides[nearest])
    return tuple(out)


def _head_edit(head, width):
    """The keys of a head config that read the backbone, at the new width."""
    edit = {}
    if 'in_channels' in head:
        edit['in_channels'] = _widths(head['in_channels'], width)
    if head.get('c1_in_channels'):
        edit['c1_in_channels'] = width
    inner = head.get('kernel_generate_head')
    if isinstance(inner, dict) and 'in_channels' in inner:
        edit['kernel_generate_head'] = dict(in_channels=_widths(inner['in_channels'], width))
    return edit


def _zoo_imports(cfg, replaced_type):
    """The config's ``custom_imports`` modules, without those of the replaced backbone's
    package (``mmpretrain.ConvNeXt`` → ``mmpretrain.models`` goes)."""
    imports = _as_list((cfg.get('custom_imports') or {}).get('imports'))
    scope = replaced_type.split('.')[0] if isinstance(replaced_type, str) and \
        '.' in replaced_type else None
    kept = [m for m in imports if m != 'mmseg_rass' and
            (scope is None or m.split('.')[0] != scope)]
    return kept, [m for m in imports if m not in kept and m != 'mmseg_rass']


def _rass_edit(zoo, width, backbone, notes):
    cfg = zoo.cfg
    model = {'data_preprocessor': dict(mean=_Raw('[127.5] * 3'), std=_Raw('[127.5] * 3'))}
    if cfg.model.get('pretrained'):
        model['pretrained'] = None
    model['backbone'] = backbone
    strides, read, neck = zoo.backbone_strides, zoo.read, cfg.model.get('neck')
    if neck and zoo.neck_strides == strides:  # a neck that only changes widths (FPN): kept
        model['neck'] = dict(in_channels=_widths(neck.get('in_channels', strides), width))
        notes.append(f'{neck.get("type")} neck in_channels')
        read = None  # the neck reads every level, the heads read the neck
    elif neck:  # builds a pyramid from one scale: the RASS backbone gives the pyramid itself
        model['neck'] = None
        strides = zoo.neck_strides
        notes.append(f'neck=None ({neck.get("type")})')
    out_strides = rass_out_strides(strides, read)
    if out_strides != RASS_DEFAULT_STRIDES:
        backbone['out_strides'] = out_strides
        notes.insert(0, f'out_strides {out_strides}')
    for key in ('decode_head', 'auxiliary_head'):
        heads = cfg.model.get(key)
        if not heads or model.get('neck'):
            continue
        if isinstance(heads, (list, tuple)):  # mmengine cannot merge into list items
            model[key] = [dict(h, **_head_edit(h, width)) for h in heads]
            notes.append(f'{key} list restated ({", ".join(h["type"] for h in heads)})')
        else:
            model[key] = _head_edit(heads, width)
            notes += [k for k in model[key] if k != 'in_channels']
            if key == 'auxiliary_head':
                notes.append('aux head')
    return [f'model = {_source(model)}',
            "optim_wrapper = dict(constructor='RASSOptimWrapperConstructor')"]


def _spt_edit(zoo, notes):
    if zoo.cfg.model.get('neck'):
        raise MixError(f'SPT units take the neck slot, and this config has a neck '
                       f'({zoo.cfg.model.neck.get("type")}): choose a config without a neck')
    levels = set(range(len(zoo.backbone_strides)))
    unread = [] if zoo.read is None else sorted(levels - zoo.read)
    if unread:
        notes.append(f'units of level{"s" * (len(unread) > 1)} '
                     f'{", ".join(map(str, unread))} (no head reads) never train')
    model = dict(type='SAMPriorEncoderDecoder', trainable_modules=['neck'], pretrained=None,
                 backbone=dict(init_cfg=None),
                 neck=dict(type='SPTNeck', in_channels=zoo.backbone_channels))
    return [f'model = {_source(model)}',
            "optim_wrapper = dict(constructor='RASSOptimWrapperConstructor')",
            "load_from = None  # the zoo model's checkpoint (SPT trains units on it, frozen)"]


def _spd_edit(zoo, notes, vgg_weights):
    channels = zoo.neck_channels or zoo.backbone_channels
    if zoo.neck_channels:
        notes.append('teacher reads the neck outputs')
    teacher = dict(type='SAMDistillTeacher', neck=dict(type='SPFNeck', in_channels=channels),
                   decode_head=_Raw('{{_base_.model.decode_head}}'),
                   spd_loss=dict(type='SPDLoss', loss_weight=0.005),
                   sgr_loss=dict(type='SGRLoss', loss_weight=200., vgg_weights=vgg_weights))
    hook = dict(type='SAMDistillHook', teacher=teacher,
                optim_wrapper=dict(optimizer=dict(type='AdamW', lr=6e-5, weight_decay=0.01)))
    hooks = [dict(h) for h in zoo.cfg.get('custom_hooks') or []] + [hook]
    model = dict(type='SAMDistillEncoderDecoder', pretrained=None, backbone=dict(init_cfg=None))
    return [f'model = {_source(model)}', f'custom_hooks = {_source(hooks)}']


def mix_config(config, method, arch=None, pretrained_model_path=SD21_FOLDER, scr_lora=None,
               out_channels=None, backbone_strides=None, vgg_weights=VGG_WEIGHTS, out_dir='.'):
    """The config file text that mixes ``method`` into ``config``.

    Args:
        config (str): an mmseg config: ``mmseg::<dir>/<name>.py`` (model zoo) or a path.
        method (str): ``'rass'``, ``'spt'`` or ``'spd'``.
        arch (str, optional): RASS: random weights of this architecture (``'tiny'``) instead of
            ``pretrained_model_path`` (tests, CPU demos).
        pretrained_model_path (str): RASS: the local SD2.1-base folder.
        scr_lora (str, optional): RASS: the SCR LoRA file to merge.
        out_channels (int, optional): RASS: width of the backbone's outputs (default 512).
        backbone_strides (Sequence[int], optional): strides of the replaced backbone's outputs,
            for a backbone whose package is not installed here.
        vgg_weights (str): SPD: the VGG-16 weights of the SGR loss.
        out_dir (str): the folder the file will be written to (``_base_`` of a config given
            by path is relative to it).

    Returns:
        Mixed: ``text`` (the file) and ``notes`` (what the edit does besides the standard
        parts, in a few words).
    """
    from mmengine.config import Config
    from yapf.yapflib.yapf_api import FormatCode

    from .evaluation.cells import resolve_config
    if method not in METHODS:
        raise MixError(f'unknown method {method!r}: choose from {", ".join(METHODS)}')
    path = resolve_config(config)
    if not osp.isfile(path):
        raise MixError(f'config {path} does not exist: pass mmseg::<dir>/<name>.py (a model-zoo '
                       'config) or the path of a config file')
    try:
        cfg = Config.fromfile(path, import_custom_modules=False)
    except Exception as e:
        raise MixError(f'config {config} cannot be loaded ({type(e).__name__}: '
                       f'{" ".join(str(e).split())[:200]})') from None
    if not isinstance(cfg.get('model'), dict) or not cfg.model.get('backbone') or \
            not cfg.model.get('decode_head'):
        raise MixError(f'config {config} has no segmentor with a backbone and a decode head: '
                       'pass a segmentation config')
    if method != 'rass' and cfg.model.get('type') != 'EncoderDecoder':
        raise MixError(f'{method.upper()} replaces the segmentor type EncoderDecoder, and the '
                       f'model of {config} is a {cfg.model.get("type")}: choose an '
                       'EncoderDecoder config')
    zoo = inspect_zoo(cfg, backbone_strides)
    notes = []
    kept, dropped = _zoo_imports(cfg, cfg.model.backbone.get('type') if method == 'rass'
                                 else None)
    if dropped:
        notes.append(f'custom_imports drops {", ".join(dropped)}')
    base = config if config.startswith('mmseg::') else osp.relpath(path, out_dir)
    header = [f'# {method.upper()} mixed into {config} by tools/mix_config.py:',
              '# the config it inherits, with only the differences stated.']
    if method == 'rass':
        width = out_channels or RASS_DEFAULT_CHANNELS
        backbone = dict(_delete_=True, type='RASSBackbone')
        backbone.update(dict(arch=arch) if arch else dict(
            pretrained_model_path=pretrained_model_path))
        if scr_lora:
            backbone['scr_lora'] = scr_lora
        if out_channels:
            backbone['out_channels'] = out_channels
        body = _rass_edit(zoo, width, backbone, notes)
        header.append('# A frozen Stable Diffusion backbone (docs/rass.md); the config\'s own '
                      'heads, optimizer, schedule.')
    elif method == 'spt':
        body = _spt_edit(zoo, notes)
    else:
        body = _spd_edit(zoo, notes, vgg_weights)
    if method in ('spt', 'spd'):
        header.append('# The data pipelines need SAM priors (LoadSAMPriors, '
                      'PackSegInputsWithSAMPriors):')
        header.append('# see docs/sam_priors.md, section 2.')
    imports = ['mmseg_rass'] + kept
    lines = header + [f'_base_ = {base!r}',
                      PLUGIN_IMPORTS.replace("['mmseg_rass']", _source(imports))] + body
    style = dict(based_on_style='pep8', column_limit=100,
                 split_before_expression_after_opening_paren=True)
    return Mixed(text=FormatCode('\n'.join(lines) + '\n', style_config=style)[0], notes=notes)
