"""Mix the plug-in's methods into real mmseg model-zoo configs and train one step on CPU.

For each model-zoo family (the configs shipped inside mmseg 1.2.2's wheel, ``mmseg::...``) the
config ``tools/mix_config.py`` writes (``mmseg_rass.mixing``: derived from the zoo model):

* **RASS**: a ``RASSBackbone`` with the tiny random Stable Diffusion, the heads' widths,
  [-1, 1] input, one-line optimizer constructor; build, the config's own optimizer (its
  constructor replaced by ``RASSOptimWrapperConstructor``, its ``paramwise_cfg`` kept), one
  training step;
* **SPT**: ``SPTNeck`` on the frozen zoo model (``SAMPriorEncoderDecoder``), one step;
* **SPD**: the zoo model as the student of ``SAMDistillEncoderDecoder`` with an SPF teacher
  (``SAMDistillTeacher``, random VGG for SGR), one step of student and teacher.

Each check asserts a finite loss, that every trainable parameter of the backbone (RASS), of
the SPT neck (SPT) or of the student and teacher (SPD) received a finite gradient, that
nothing frozen is in the optimizer, and counts the warnings logged while building the
optimizer. CPU-only adaptations that are not part of the edit: SyncBN → BN, AmpOptimWrapper →
OptimWrapper, 64×128 inputs, random weights (no downloads; SGR's VGG random). ``docs/rass.md`` and
``docs/sam_priors.md`` hold the table this prints.

    python tools/check_zoo_mixing.py                        # every family, every method
    python tools/check_zoo_mixing.py --methods rass --families segformer pspnet
    python tools/check_zoo_mixing.py --show-edit rass deeplabv3plus   # print the config text
"""
import argparse
import copy
import logging
import math
import os
import os.path as osp
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import mmseg_rass  # noqa: E402,F401  (compat, registries)
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.model import revert_sync_batchnorm  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from mmseg_rass.mixing import head_levels, mix_config, read_levels  # noqa: E402
from mmseg_rass.tools_entry import run_cli  # noqa: E402

C = 64  # RASS out_channels with the tiny Stable Diffusion
SIZE = (64, 128)  # input size of the training step (the tiny UNet's bottom then has 2 tokens)


@dataclass
class Family:
    """A model-zoo family: its config (relative to mmseg's config folder) and the methods the
    sweep mixes into it (RASS always)."""
    name: str
    config: str
    spt: bool = False
    spd: bool = False
    backbone_strides: tuple = None  # a backbone whose package is not installed here


FAMILIES = [
    Family('segformer', 'segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py',
           spt=True, spd=True),
    Family('deeplabv3plus', 'deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py',
           spt=True, spd=True),
    Family('pspnet', 'pspnet/pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py', spt=True,
           spd=True),
    Family('upernet_r50', 'upernet/upernet_r50_4xb2-80k_cityscapes-512x1024.py', spd=True),
    Family('upernet_convnext', 'convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py',
           backbone_strides=(4, 8, 16, 32)),  # mmpretrain's ConvNeXt: not installed here
    Family('upernet_swin',
           'swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
           spt=True),
    Family('ocrnet', 'ocrnet/ocrnet_hr18_4xb2-80k_cityscapes-512x1024.py'),
    Family('sem_fpn', 'sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py', spd=True),
    Family('knet', 'knet/knet-s3_r50-d8_upernet_8xb2-adamw-80k_ade20k-512x512.py'),
    Family('segnext', 'segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py', spt=True),
    Family('mask2former', 'mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py'),
    Family('beit', 'beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py'),
    Family('twins', 'twins/twins_svt-s_uperhead_8xb2-160k_ade20k-512x512.py'),
]
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
METHODS = ('rass', 'spt', 'spd')


def has_check(method, family):
    """Whether ``family`` is checked with ``method`` (RASS: every family)."""
    return method == 'rass' or bool(getattr(family, method))


def mixed(method, family):
    """The config ``tools/mix_config.py`` writes for ``family`` (tiny random SD for RASS)."""
    if not has_check(method, family):
        raise KeyError(f'{family.name} has no {method} check')
    return mix_config(f'mmseg::{family.config}', method, arch='tiny', out_channels=C,
                      backbone_strides=family.backbone_strides)


def config_text(method, family):
    """The whole config file a user gets from tools/mix_config.py."""
    return mixed(method, family).text


def zoo_recipe(family):
    """What the zoo config brings: ``pretrained=`` and its optimizer recipe, in a few words."""
    import mmseg
    cfg = Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                                   family.config), import_custom_modules=False)
    optim = cfg.optim_wrapper
    parts = ['pretrained='] if cfg.model.get('pretrained') else []
    parts.append(optim.optimizer.type)
    paramwise = optim.get('paramwise_cfg') or {}
    constructor = optim.get('constructor')
    if constructor:
        parts.append(constructor.replace('OptimizerConstructor', '') + ' ' + ', '.join(
            f'{k} {v}' for k, v in paramwise.items()))
    elif paramwise:
        keys = list(paramwise.get('custom_keys', {})) + [k for k in paramwise
                                                         if k != 'custom_keys']
        parts.append('paramwise ' + ', '.join(keys))
    if optim.get('clip_grad'):
        parts.append('clip_grad')
    if optim.get('type') == 'AmpOptimWrapper':
        parts.append('AMP')
    return '; '.join(parts)


class _LogCounter(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def load_cpu_config(text, work_dir):
    """Write and load a config; apply the CPU-only adaptations (not part of the edit): 64×128
    inputs, no AMP, SPD's SGR loss on a random VGG (no weights here)."""
    path = osp.join(work_dir, 'mixed_config.py')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    cfg = Config.fromfile(path)
    cfg.model.data_preprocessor.size = SIZE
    optim = cfg.optim_wrapper
    if optim.get('type') == 'AmpOptimWrapper':  # needs a GPU
        optim.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):
            optim.pop(key, None)
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') == 'SAMDistillHook':
            hook.teacher.sgr_loss = dict(type='SGRLoss', loss_weight=200.,
                                         random_init_vgg=True, layer_ids=(3, 8))
    return cfg


def make_batch(num_classes, num_masks=None, batch=2, seed=0):
    """Random uint8 images, labels (and SAM masks) as mmseg's data loader packs them."""
    g = torch.Generator().manual_seed(seed)
    h, w = SIZE
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        s = SegDataSample(metainfo=dict(img_shape=SIZE, pad_shape=SIZE, ori_shape=SIZE))
        # blocky labels: a few classes per image, like a real label map
        small = torch.randint(0, min(num_classes, 8), (1, h // 16, w // 16), generator=g)
        s.gt_sem_seg = PixelData(data=small.repeat_interleave(16, 1).repeat_interleave(16, 2))
        if num_masks:
            masks = torch.zeros(num_masks, h, w, dtype=torch.uint8)
            for k in range(num_masks):
                masks[k, (k * h) // num_masks:((k + 1) * h) // num_masks] = 1
            s.gt_sam_masks = PixelData(data=masks)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def _heads(model):
    heads = []
    for attr in ('decode_head', 'auxiliary_head'):
        head = getattr(model, attr, None)
        if head is None:
            continue
        heads += list(head) if isinstance(head, torch.nn.ModuleList) else [head]
    return heads


def levels_read(model):
    """The backbone strides each head reads, e.g. ``'decode s8, aux s8'``."""
    if model.with_neck and type(model.neck).__name__ not in ('SPTNeck', 'SPFNeck'):
        return f'{type(model.neck).__name__} neck'
    strides = getattr(model.backbone, 'out_strides', None)
    parts = []
    for head in _heads(model):
        inner = getattr(head, 'kernel_generate_head', head)
        index = getattr(inner, 'in_index', None)
        if index is None:  # Mask2Former reads every level
            parts.append(f'{type(head).__name__} all')
            continue
        index = [index] if isinstance(index, int) else list(index)
        if strides is None:
            parts.append(f'{type(head).__name__} level ' + '/'.join(map(str, index)))
        else:
            parts.append(f'{type(head).__name__} s' + '/'.join(str(strides[i]) for i in index))
    return ', '.join(parts)


def _grad_problems(named_params, allow_zero=False):
    """Names of trainable parameters without a finite (non-zero) gradient.

    LoRA A always may be zero (its B starts at 0); ``allow_zero`` accepts zero gradients, e.g.
    of residual branches whose last norm a zoo model initialises to 0 (``zero_init_residual``).
    """
    missing = []
    for name, p in named_params:
        if not p.requires_grad:
            continue
        if p.grad is None or not torch.isfinite(p.grad).all():
            missing.append(name)
        elif not allow_zero and p.grad.abs().sum() == 0 and 'lora_A' not in name:
            missing.append(name + ' (zero)')
    return missing


def _optimizer_summary(optim_wrapper, model, prefix='backbone.'):
    base_lr = optim_wrapper.optimizer.defaults['lr']
    names = {id(p): n for n, p in model.named_parameters()}
    scales = [g['lr'] / base_lr for g in optim_wrapper.optimizer.param_groups
              if any(names.get(id(p), '').startswith(prefix) for p in g['params'])]
    in_optim = {id(p) for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    return scales, in_optim, trainable


def _fmt_scales(scales):
    if not scales:
        return '-'
    lo, hi = min(scales), max(scales)
    return f'x{lo:.3g}' if math.isclose(lo, hi) else f'x{lo:.3g}..x{hi:.3g}'


def _build(cfg, log):
    init_default_scope('mmseg')
    with warnings.catch_warnings():  # mmseg's deprecation notes while building heads
        warnings.simplefilter('ignore', UserWarning)
        model = MODELS.build(cfg.model)
        model.init_weights()
    model = revert_sync_batchnorm(model)
    model.train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        before = len(log.messages)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        n_warn = len(log.messages) - before + len(caught)
    return model, optim_wrapper, n_warn


def check(method, family, work_dir):
    """Run one check; return a result row (dict). Raises AssertionError on a failed check."""
    mix = mixed(method, family)
    cfg = load_cpu_config(mix.text, work_dir)
    log = _LogCounter()
    logger = MMLogger.get_current_instance()
    logger.addHandler(log)
    try:
        start = time.perf_counter()
        model, optim_wrapper, n_warn = _build(cfg, log)
        num_classes = model.decode_head[-1].num_classes if isinstance(
            model.decode_head, torch.nn.ModuleList) else model.decode_head.num_classes
        row = dict(method=method, family=family.name, config=family.config,
                   note='; '.join(mix.notes) or '-',
                   constructor=cfg.optim_wrapper.get('constructor', 'default'),
                   recipe=zoo_recipe(family), optim_warnings=n_warn)
        if method == 'rass':
            row.update(_step_rass(model, optim_wrapper, num_classes))
        elif method == 'spt':
            row.update(_step_spt(model, optim_wrapper, num_classes))
        else:
            row.update(_step_spd(cfg, model, optim_wrapper, num_classes))
        row['seconds'] = round(time.perf_counter() - start, 1)
        assert n_warn == 0, f'{n_warn} warnings while building the optimizer: {log.messages[:3]}'
        return row
    finally:
        logger.removeHandler(log)


def backward(model, optim_wrapper, data):
    """The first half of ``model.train_step`` (forward, loss, backward), gradients kept.

    Returns:
        tuple[float, dict]: the total loss and the loss dict.
    """
    with optim_wrapper.optim_context(model):
        data = model.data_preprocessor(data, True)
        losses = model._run_forward(data, mode='loss')
    parsed, _ = model.parse_losses(losses)
    optim_wrapper.backward(parsed)
    loss = parsed.item()
    assert math.isfinite(loss), f'loss {loss}'
    return loss, losses


def _step_rass(model, optim_wrapper, num_classes):
    scales, in_optim, trainable = _optimizer_summary(optim_wrapper, model)
    assert in_optim == trainable, 'the optimizer does not hold exactly the trainable parameters'
    proj = next(model.backbone.projections.parameters())
    before = proj.detach().clone()
    loss, _ = backward(model, optim_wrapper, make_batch(num_classes))
    problems = _grad_problems(model.backbone.named_parameters())
    assert not problems, f'backbone parameters without gradient: {problems[:5]}'
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    assert not torch.equal(before, proj), 'the step did not change the backbone'
    n = sum(p.numel() for p in model.backbone.parameters() if p.requires_grad)
    return dict(levels=levels_read(model), backbone_lr=_fmt_scales(scales), loss=round(loss, 3),
                trainable=n)


def _step_spt(model, optim_wrapper, num_classes):
    _, in_optim, trainable = _optimizer_summary(optim_wrapper, model)
    neck = {id(p) for p in model.neck.parameters()}
    assert in_optim == trainable == neck, 'the optimizer must hold exactly the SPT units'
    read = read_levels(_heads(model))
    units = [(i, u) for i, u in enumerate(model.neck.units) if read is None or i in read]
    data = make_batch(num_classes, num_masks=4)
    loss, _ = backward(model, optim_wrapper, data)
    # Zero-initialised (gamma, beta): the first step moves only the last conv of each unit.
    problems = [f'units.{i}.{n}' for i, u in units
                for n in _grad_problems(u.to_scale_shift.named_parameters())]
    assert not problems, f'SPT parameters without gradient: {problems[:5]}'
    frozen_grads = [n for n, p in model.named_parameters() if not n.startswith('neck.')
                    and p.grad is not None]
    assert not frozen_grads, f'frozen parameters got gradients: {frozen_grads[:5]}'
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    backward(model, optim_wrapper, data)  # ... after which the whole unit learns
    problems = [f'units.{i}.{n}' for i, u in units for n in _grad_problems(u.named_parameters())]
    assert not problems, f'SPT parameters without gradient in step 2: {problems[:5]}'
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    read_ids = [i for i, _ in units]
    return dict(levels=f'{len(units)} of {len(model.neck.units)} (levels '
                       f'{", ".join(map(str, read_ids))})',
                backbone_lr='frozen', loss=round(loss, 3),
                trainable=sum(p.numel() for p in model.neck.parameters()))


def _step_spd(cfg, model, optim_wrapper, num_classes):
    hook = next(h for h in cfg.custom_hooks if h.type == 'SAMDistillHook')
    teacher = MODELS.build(copy.deepcopy(hook.teacher))
    teacher.init_weights()
    teacher = revert_sync_batchnorm(teacher).train()
    teacher_optim = build_optim_wrapper(teacher, hook.optim_wrapper)
    model.attach_teacher(teacher)
    loss, losses = backward(model, optim_wrapper, make_batch(num_classes, num_masks=4))
    assert {'loss_spd', 'loss_sgr'} <= set(losses), sorted(losses)
    problems = _grad_problems(model.named_parameters(), allow_zero=True)
    # The SPF units chain fine to coarse; the output gate of a level the head does not read
    # gets no gradient.
    read = head_levels(teacher.decode_head)
    unread = tuple(f'neck.units.{i}.gate.' for i in range(len(teacher.neck.units))
                   if read is not None and i not in read)
    problems += ['teacher.' + n for n in _grad_problems(teacher.named_parameters())
                 if not n.startswith(unread)]
    assert not problems, f'parameters without gradient: {problems[:5]}'
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    teacher_optim.step()
    model.attach_teacher(None)
    return dict(levels='student + teacher', backbone_lr='zoo', loss=round(loss, 3),
                trainable=sum(p.numel() for p in teacher.parameters()))


def run(methods=METHODS, families=None, verbose=False):
    """Run the checks; return the result rows (failed ones carry ``error``)."""
    rows = []
    torch.manual_seed(0)
    MMLogger.get_instance('check_zoo_mixing', log_level='WARNING')  # no per-parameter INFO lines
    for method in methods:
        for family in FAMILIES:
            if (families and family.name not in families) or not has_check(method, family):
                continue
            with tempfile.TemporaryDirectory() as work_dir:
                try:
                    row = check(method, family, work_dir)
                except Exception as e:  # one failed family must not hide the others
                    if verbose:
                        traceback.print_exc()
                    row = dict(method=method, family=family.name, config=family.config,
                               error=f'{type(e).__name__}: {e}'[:300])
            rows.append(row)
            status = 'FAIL ' + row['error'] if 'error' in row else f'ok ({row["seconds"]} s)'
            print(f'[{method}] {family.name}: {status}', flush=True)
    return rows


COLUMNS = dict(
    rass=(('RASS edit besides backbone and widths', 'note'), ('heads read', 'levels'),
          ('backbone lr (config\'s recipe)', 'backbone_lr'),
          ('trainable backbone', 'trainable')),
    spt=(('SPT units read', 'levels'), ('SPT parameters', 'trainable')),
    spd=(('teacher parameters', 'trainable'), ))


def format_table(rows):
    """Markdown tables of the result rows, one per method."""
    out = []
    for method in METHODS:
        part = [r for r in rows if r['method'] == method]
        if not part:
            continue
        cols = COLUMNS[method]
        head = ['family', 'zoo config (`mmseg::`)', 'zoo recipe', *[c for c, _ in cols],
                'optimizer warnings', 'loss', 'result']
        lines = [f'**{method.upper()}**', '', '| ' + ' | '.join(head) + ' |',
                 '|' + '---|' * len(head)]
        for r in part:
            cells = [r['family'], f'`{r["config"]}`']
            if 'error' in r:
                cells += [''] * (len(head) - 3) + [f'**fail**: {r["error"]}']
            else:
                values = [r[k] for _, k in cols]
                values = [f'{v / 1e6:.2f}M' if k == 'trainable' else v
                          for (_, k), v in zip(cols, values)]
                cells += [r['recipe'], *values, r['optim_warnings'], r['loss'], 'ok']
            lines.append('| ' + ' | '.join(str(c) for c in cells) + ' |')
        out.append('\n'.join(lines))
    return '\n\n'.join(out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', nargs='+', choices=METHODS, default=list(METHODS))
    parser.add_argument('--families', nargs='+', choices=sorted(FAMILY_BY_NAME))
    parser.add_argument('--show-edit', nargs=2, metavar=('METHOD', 'FAMILY'),
                        help='print the config file of one check and exit')
    parser.add_argument('--out', help='also write the Markdown table to this file')
    parser.add_argument('--verbose', action='store_true', help='print tracebacks of failures')
    args = parser.parse_args(argv)
    if args.show_edit:
        method, name = args.show_edit
        if method not in METHODS or name not in FAMILY_BY_NAME:
            parser.error(f'--show-edit: choose METHOD from {", ".join(METHODS)} and FAMILY from '
                         f'{", ".join(sorted(FAMILY_BY_NAME))}')
        if not has_check(method, FAMILY_BY_NAME[name]):
            parser.error(f'--show-edit: {name} has no {method} check')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.show_edit:
        method, name = args.show_edit
        print(config_text(method, FAMILY_BY_NAME[name]))
        return
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    rows = run(args.methods, args.families, args.verbose)
    table = format_table(rows)
    print(table)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(table + '\n')
    failed = [r for r in rows if 'error' in r]
    if failed:
        sys.exit(f'{len(failed)} of {len(rows)} checks failed')


if __name__ == '__main__':
    run_cli(main)
