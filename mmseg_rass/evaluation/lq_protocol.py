"""The RASS paper's Table 1 protocol for any mmseg model: DT, R2S and FT on low-quality images.

Table 1 of the RASS paper compares segmentors on low-quality (LQ) test sets in three settings:

* **DT** — the model trained on clean images, tested on the LQ images;
* **R2S** — a restorer restores each LQ image, then the clean-trained model segments it
  (``RestoreThenSegment`` with the row's restorer: SCR, SegSR or any registered restorer);
* **FT** — the model fine-tuned on LQ images, tested on the LQ images;

with FPS, total and trainable parameters per method. A *row* is a method: a clean-trained
config + checkpoint (DT; also R2S's segmentor), an optional restorer (R2S) and an optional
LQ-fine-tuned config + checkpoint (FT); every part is optional, so a row may hold only an FT
model (RASS, whose DT is not applicable). An *evaluation set* is a test dataloader: a folder of
already degraded images (the authors' degraded ADE20K-val, RealLQ), or clean images degraded
deterministically (``DegradedDataset``: ADE20K-LQ, Cityscapes-LQ, the demo). Every row is
evaluated on every set with mmseg's test loop (``PerClassIoUMetric``); the set defines the
images, labels and test resolution, the same for every row.

Per cell it records mIoU, aAcc, mAcc, per-class IoU and the FPS of the model's ``test_step``
(preprocessing, forward, resizing to the label): on the device mmengine picks, batch 1, at the
set's test resolution, over its first ``fps_images`` images loaded beforehand (no data loading
runs meanwhile), after ``fps_warmup`` untimed calls. Where a row has a restorer and the set
keeps the clean image (a ``DegradedDataset``), a *restoration* cell holds PSNR/SSIM of the
restored images and of the LQ input against the clean image (``RestorationMetric`` of the
restorer's config). Parameters (total, ``requires_grad``) are counted on the meta device
(:mod:`mmseg_rass.models.param_count`).

Cells are cached under ``<work_dir>/cells/<set>/<row>/<setting>.json``, keyed by content
(:mod:`.cells`): checkpoint bytes, the resolved config of the cell, the files its model config
names, the name and contents of every test file, the plug-in's code and library versions, and
the device. Checkpoints load strictly and safely (``--trust-checkpoint`` to opt in).

``tools/lq_protocol.py`` is the command line; ``docs/rass.md`` shows the commands of Table 1.
"""
import copy
import inspect
import json
import os
import os.path as osp
import re
import time
import warnings
from dataclasses import asdict, dataclass, field, fields

from ..datasets.degraded_dataset import plain_dataset_cfg
from .cells import (BenchmarkError, CellCache, FileDigests, build_dataset, build_model_checked,
                    build_test_runner, check_checkpoint_arg, data_digest, dataset_files,
                    device_name, dump_json, load_checkpoint_checked, load_config_file,
                    local_checkpoint, one_line, package_code_digest, read_result,
                    referenced_files,
                    resolve_config, run_test_loop, runner_model_cfg, sha256_text, strip_keys,
                    type_name, use_per_class_metric)

FORMAT = 'mmseg_rass.lq_protocol.v1'
CACHE_VERSION = 1
SETTINGS = ('dt', 'r2s', 'ft')
SETTING_NAMES = dict(dt='DT', r2s='R2S', ft='FT')
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# RASS paper, Table 1 ("Semantic segmentation (mIoU) on degraded ADE20K-val and RealLQ"), as the
# Ka1Guan/RASS README shows it (asserts/rass_result.png): (DT, R2S, FT) per test set, None = "-"
# ("not applicable"); FPS, total and trainable parameters as printed. Measured by the authors.
PAPER_TABLE1 = {
    'SegFormer': dict(ade20k=(26.37, 44.34, 34.57), real_lq=(22.54, 25.31, 22.63), fps=None,
                      params='84.7M', trainable='84.7M'),
    'Mask2Former': dict(ade20k=(37.15, 45.64, 44.19), real_lq=(33.15, 34.83, 34.41), fps=5.4,
                        params='215.5M', trainable='215.5M'),
    'FeedFormer': dict(ade20k=(22.62, 41.39, 23.98), real_lq=(20.87, 21.19, 19.19), fps=50.4,
                       params='29.1M', trainable='27.9M'),
    'SeaFormer': dict(ade20k=(16.39, 38.09, 23.24), real_lq=(15.52, 17.86, 14.97), fps=31.1,
                      params='14M', trainable='14M'),
    'PEM+': dict(ade20k=(33.55, 45.54, 41.52), real_lq=(33.52, 31.80, 34.38), fps=9.7,
                 params='207.1M', trainable='207.1M'),
    'RASS': dict(ade20k=(None, 46.81, 47.42), real_lq=(None, 37.84, 39.80), fps=3.4,
                 params='1788.7M', trainable='27.9M'),
}
PAPER_COLUMNS = dict(ade20k='degraded ADE20K-val', real_lq='RealLQ')

# Evaluation sets by name: the config file whose test_dataloader is the set (relative to the
# repository) and the paper's column it matches.
EVAL_SETS = {
    'demo': dict(config='configs/_base_/datasets/demo_cityscapes_lq.py', paper=None),
    'cityscapes-lq': dict(config='configs/_base_/datasets/cityscapes_lq.py', paper=None),
    'ade20k-lq': dict(config='configs/_base_/datasets/ade20k_lq.py', paper='ade20k'),
    # the authors' released test sets, as the configs that evaluate their weights read them
    'ade20k-lq-released': dict(config='configs/rass/rass_mask2former_released_ade20k_val.py',
                               paper='ade20k'),
    'real-lq': dict(config='configs/rass/rass_mask2former_released_real_lq.py',
                    paper='real_lq'),
}


@dataclass
class Row:
    """One method (a row of the table). Every part is optional; give at least one setting.

    Args:
        name (str): the row's name (unique; ``PAPER_TABLE1`` names match the paper's row).
        config, checkpoint (str): the clean-trained segmentor: the DT cell, and R2S's
            segmentor. ``mmseg::`` configs and http(s) checkpoints allowed.
        restorer_config (str): a config whose ``model`` is a restorer (``configs/scr/``,
            ``configs/segsr/``) or a ``RestoreThenSegment`` (its ``restorer`` is taken, e.g.
            ``configs/rass/restore_then_segment_demo.py``): the R2S cell.
        restorer_checkpoint (str): the restorer's weights: an mmengine checkpoint (loaded
            strictly), or an SCR LoRA file (``.safetensors``, as ``scr_lora``); default: what
            the restorer config names.
        ft_config, ft_checkpoint (str): the model fine-tuned on LQ images: the FT cell.
        paper (str): the ``PAPER_TABLE1`` row shown beside it; default: the row's name if it
            is one (case-insensitive).
        cfg_options (dict): overrides of the row's segmentor configs (``config``,
            ``ft_config``), as ``--cfg-options`` of ``tools/test.py``, e.g.
            ``{'model.backbone.scr_lora': None}`` for a converted RASS checkpoint.
    """
    name: str
    config: str = None
    checkpoint: str = None
    restorer_config: str = None
    restorer_checkpoint: str = None
    ft_config: str = None
    ft_checkpoint: str = None
    paper: str = None
    cfg_options: dict = field(default_factory=dict)


@dataclass
class EvalSet:
    """One evaluation set (a column group of the table).

    Args:
        name (str): an ``EVAL_SETS`` name, or any name with ``config``.
        config (str): a config file whose ``test_dataloader`` (and ``test_evaluator``) is the
            set; default the ``EVAL_SETS`` entry's.
        data_root (str): overrides ``test_dataloader.dataset.data_root``.
        paper (str): the paper's column it matches (``'ade20k'``, ``'real_lq'``); default the
            ``EVAL_SETS`` entry's.
        cfg_options (dict): further overrides of the set's config (e.g.
            ``{'test_dataloader.num_workers': 0}``).
    """
    name: str
    config: str = None
    data_root: str = None
    paper: str = None
    cfg_options: dict = field(default_factory=dict)


def parse_eval_set(text):
    """``NAME``, ``NAME=DATA_ROOT``, ``NAME:CONFIG`` or ``NAME:CONFIG=DATA_ROOT`` → EvalSet."""
    spec, _, data_root = text.partition('=')
    name, _, config = spec.partition(':')
    return EvalSet(name=name, config=config or None, data_root=data_root or None)


def row_from_dict(spec, where):
    """A :class:`Row` from a dict (a rows file entry); unknown keys are an error."""
    known = {f.name for f in fields(Row)}
    if not isinstance(spec, dict) or 'name' not in spec:
        raise BenchmarkError(f'{where}: each row is a dict with at least a name, e.g. '
                             "dict(name='FPN-R18', config=..., checkpoint=...)")
    unknown = sorted(set(spec) - known)
    if unknown:
        raise BenchmarkError(f'{where}: row {spec["name"]!r} has unknown keys {unknown}; '
                             f'choose from {sorted(known)}')
    return Row(**spec)


def load_rows(path):
    """Rows (and evaluation sets, if given) from a file mmengine reads (.py, .json, .yaml)
    holding ``rows = [dict(name=..., config=..., ...), ...]`` and optionally ``eval_sets``."""
    cfg = load_config_file(path, what='rows file')
    if not isinstance(cfg.get('rows'), list) or not cfg.rows:
        raise BenchmarkError(f'rows file {path} has no rows: write rows = [dict(name=..., '
                             'config=..., checkpoint=...), ...]')
    rows = [row_from_dict(dict(r), f'rows file {path}') for r in cfg.rows]
    sets = []
    for spec in cfg.get('eval_sets') or []:
        try:
            sets.append(parse_eval_set(spec) if isinstance(spec, str) else EvalSet(**dict(spec)))
        except TypeError as e:
            raise BenchmarkError(f'rows file {path}: evaluation set {spec}: {e}') from None
    return rows, sets


def _slug(name):
    return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or 'row'


def paper_row(row):
    """The ``PAPER_TABLE1`` name matching a row, or ``None``."""
    if row.paper is not None:
        return row.paper
    return next((k for k in PAPER_TABLE1 if k.lower() == row.name.lower()), None)


def check_rows(rows):
    """Check the rows' options and files (before anything is built); one-line errors."""
    if not rows:
        raise BenchmarkError('no row given: pass CONFIG CHECKPOINT (and --restorer / --ft), or '
                             '--rows FILE')
    slugs = [_slug(r.name) for r in rows]
    if len(set(slugs)) < len(slugs):
        raise BenchmarkError(f'row names {[r.name for r in rows]} are not unique (as folder '
                             'names): give each row its own --name')
    for row in rows:
        where = f'row {row.name!r}'
        if (row.config is None) != (row.checkpoint is None):
            raise BenchmarkError(f'{where}: the clean-trained model needs both a config and a '
                                 'checkpoint')
        if (row.ft_config is None) != (row.ft_checkpoint is None):
            raise BenchmarkError(f'{where}: the fine-tuned model needs both --ft CONFIG and '
                                 'CHECKPOINT')
        if row.restorer_checkpoint and not row.restorer_config:
            raise BenchmarkError(f'{where}: a restorer checkpoint needs its restorer config')
        if row.restorer_config and not row.config:
            raise BenchmarkError(f'{where}: R2S segments the restored images with the '
                                 'clean-trained model: give the row CONFIG and CHECKPOINT too')
        if not (row.config or row.ft_config):
            raise BenchmarkError(f'{where} has no model: give a clean-trained model (DT, R2S) '
                                 'and/or a fine-tuned one (--ft)')
        if row.paper is not None and row.paper not in PAPER_TABLE1:
            raise BenchmarkError(f'{where}: paper row {row.paper!r} is not in Table 1; choose '
                                 f'from {", ".join(PAPER_TABLE1)}')
        for config, what in ((row.config, 'config'), (row.restorer_config, 'restorer config'),
                             (row.ft_config, 'fine-tuned config')):
            if config and not osp.isfile(resolve_config(config)):
                raise BenchmarkError(f'{where}: {what} {resolve_config(config)} does not exist')
        for checkpoint, what in ((row.checkpoint, 'checkpoint'),
                                 (row.restorer_checkpoint, 'restorer checkpoint'),
                                 (row.ft_checkpoint, 'fine-tuned checkpoint')):
            if checkpoint:
                check_checkpoint_arg(checkpoint, f'{where}: {what}')


def load_eval_set(spec):
    """Resolve an :class:`EvalSet`: its config, dataset and files.

    Returns:
        dict: ``name``, ``config``, ``paper``, ``dataloader`` (batch 1), ``evaluator``
        (``PerClassIoUMetric``), ``classes``, ``files`` and ``degradation`` (the
        ``DegradedDataset``'s, ``None`` for already degraded images).
    """
    config, data_root, paper = spec.config, spec.data_root, spec.paper
    if config is None:
        preset = EVAL_SETS.get(spec.name)
        if preset is None:
            raise BenchmarkError(f'unknown evaluation set {spec.name!r}: choose from '
                                 f'{", ".join(EVAL_SETS)}, or give NAME:CONFIG (a config whose '
                                 'test_dataloader is the set)')
        config = preset['config']  # relative to the repository
        paper = paper or preset['paper']
    options = dict(spec.cfg_options or {})
    if data_root:
        options['test_dataloader.dataset.data_root'] = data_root
    cfg = load_config_file(config if spec.config else osp.join(REPO_ROOT, config), options,
                           what=f'evaluation set {spec.name}: config')
    if cfg.get('test_dataloader') is None:
        raise BenchmarkError(f'evaluation set {spec.name}: config {config} has no '
                             'test_dataloader')
    dataloader = copy.deepcopy(cfg.test_dataloader)
    dataloader['batch_size'] = 1
    dataset = build_dataset(dataloader['dataset'], f'evaluation set {spec.name}')
    if paper is not None and paper not in PAPER_COLUMNS:
        raise BenchmarkError(f'evaluation set {spec.name}: paper column {paper!r} is not one '
                             f'of Table 1\'s: {", ".join(PAPER_COLUMNS)}')
    return dict(name=spec.name, config=config, data_root=data_root, paper=paper,
                dataloader=dataloader,
                evaluator=use_per_class_metric(cfg.get('test_evaluator') or
                                               dict(type='IoUMetric')),
                classes=list(dataset.metainfo['classes']), files=dataset_files(dataset),
                degradation=plain_dataset_cfg(dataloader['dataset'])[1])


def _num_classes(model_cfg):
    """``num_classes`` of a segmentor config's (last) decode head, if it has one."""
    if type_name(model_cfg) == 'RestoreThenSegment':
        model_cfg = model_cfg['segmentor']
    head = model_cfg.get('decode_head')
    head = head[-1] if isinstance(head, list) else head
    return head.get('num_classes') if isinstance(head, dict) else None


def restorer_parts(row):
    """The restorer of a row: its model config (R2S defaults applied), checkpoint and the
    config's ``RestorationMetric`` arguments."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from ..models.segmentors.restore_then_segment import restorer_defaults
    cfg = load_config_file(row.restorer_config, what=f'row {row.name!r}: restorer config')
    model, checkpoint = cfg.get('model'), None
    if type_name(model) == 'RestoreThenSegment':
        model, checkpoint = model['restorer'], model.get('restorer_checkpoint')
    init_default_scope('mmseg')
    kind = MODELS.get(model['type']) if isinstance(model, dict) and model.get('type') else None
    if kind is None or not (hasattr(kind, 'restore_images') or
                            hasattr(kind, 'restore') and hasattr(kind, 'encode_prompts')):
        raise BenchmarkError(f'row {row.name!r}: restorer config {row.restorer_config} has no '
                             'restorer model (SCRRestorer, SegSR or a RestoreThenSegment): pass '
                             'a config of configs/scr/ or configs/segsr/')
    model = restorer_defaults(dict(model))
    checkpoint = row.restorer_checkpoint or checkpoint
    if checkpoint and checkpoint.endswith('.safetensors'):  # an SCR LoRA file
        if 'scr_lora' not in inspect.signature(MODELS.get(model['type'])).parameters:
            raise BenchmarkError(f'row {row.name!r}: {checkpoint} is a LoRA file, but '
                                 f'{model["type"]} takes no scr_lora: pass its mmengine '
                                 'checkpoint (.pth)')
        model['scr_lora'], checkpoint = checkpoint, None
    evaluators = cfg.get('test_evaluator') or []
    evaluators = evaluators if isinstance(evaluators, list) else [evaluators]
    metric = next((dict(m) for m in evaluators if type_name(m) == 'RestorationMetric'),
                  dict(type='RestorationMetric'))
    return model, checkpoint, metric


def _cell_cfgs(row, restorer):
    """The configs of a row's cells: setting → (config, model config, checkpoints by part)."""
    cells = {}
    if row.config:
        cfg = load_config_file(row.config, row.cfg_options, what=f'row {row.name!r}: config')
        model = runner_model_cfg(cfg)  # as tools/test.py builds it
        cells['dt'] = (cfg, model, dict(segmentor=row.checkpoint))
        if restorer is not None:
            r2s = dict(type='RestoreThenSegment', restorer=restorer[0], segmentor=model)
            cells['r2s'] = (cfg, r2s, dict(segmentor=row.checkpoint, restorer=restorer[1]))
    if row.ft_config:
        cfg = load_config_file(row.ft_config, row.cfg_options,
                               what=f'row {row.name!r}: fine-tuned config')
        cells['ft'] = (cfg, runner_model_cfg(cfg), dict(segmentor=row.ft_checkpoint))
    return cells


def _runner_cfg(cfg, model_cfg, eval_set):
    """The config a cell's runner runs: the row's config with the set's test part."""
    cfg = copy.deepcopy(cfg)
    cfg.model = copy.deepcopy(model_cfg)
    cfg.test_dataloader = copy.deepcopy(eval_set['dataloader'])
    cfg.test_evaluator = copy.deepcopy(eval_set['evaluator'])
    cfg.test_cfg = dict(type='TestLoop')
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator', 'train_cfg', 'val_cfg',
                'param_scheduler', 'optim_wrapper'):
        cfg.pop(key, None)  # a test run: the training parts compute nothing of the cell
    return cfg


def measure_fps(model, dataloader_cfg, warmup, images):
    """Images per second of ``model.test_step`` at batch 1.

    The first ``images`` batches are loaded first (so no data loading competes with the
    model), ``warmup`` untimed calls on the first one follow, then each batch is timed (CUDA
    synchronised).

    Returns:
        dict: ``fps``, ``fps_images`` (timed) and ``fps_warmup``.
    """
    import itertools

    import torch
    from mmengine.device import get_device
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(dict(dataloader_cfg, batch_size=1, num_workers=0,
                                          persistent_workers=False))
    batches = list(itertools.islice(loader, images))
    sync = torch.cuda.synchronize if get_device() == 'cuda' else (lambda: None)
    model.eval()
    seconds = 0.
    with torch.no_grad():
        for _ in range(warmup):
            model.test_step(batches[0])
        sync()
        for batch in batches:
            start = time.perf_counter()
            model.test_step(batch)
            sync()
            seconds += time.perf_counter() - start
    return dict(fps=len(batches) / seconds, fps_images=len(batches), fps_warmup=warmup)


def _restoration_metrics(restorer, eval_set, metric_cfg):
    """PSNR/SSIM of the restored images and of the LQ inputs against the clean images."""
    import torch
    from mmengine.runner import Runner
    from mmseg.registry import METRICS
    plain, degradation = plain_dataset_cfg(eval_set['dataloader']['dataset'])
    loading = next(s for s in plain['pipeline']
                   if type_name(s) in ('LoadImage', 'LoadImageFromFile'))
    dataset = dict(plain, pipeline=[
        dict(loading), dict(degradation, keep_hq=True, deterministic=True),
        dict(type='PackRestorationInputs')])
    loader = Runner.build_dataloader(dict(batch_size=1, num_workers=0, dataset=dataset,
                                          sampler=dict(type='DefaultSampler', shuffle=False)))
    restored, lq = METRICS.build(dict(metric_cfg)), METRICS.build(dict(metric_cfg))
    with torch.no_grad():
        for batch in loader:
            samples = [s.to_dict() for s in restorer.test_step(batch)]
            restored.process(batch, samples)
            lq.process(batch, [dict(s, pred_img=s['lq_img']) for s in samples])
    return dict(lq=lq.compute_metrics(lq.results),
                restored=restored.compute_metrics(restored.results))


class _Models:
    """Builds each model of a row once, on first use (cells in the cache build nothing)."""

    def __init__(self, row, cell_cfgs, restorer):
        self.row, self.cell_cfgs, self.restorer_parts = row, cell_cfgs, restorer
        self.built = {}

    def get(self, part):
        if part not in self.built:
            self.built[part] = self._build(part)
        return self.built[part]

    def _build(self, part):
        from mmseg.registry import MODELS
        where = f'row {self.row.name!r}'
        if part == 'restorer':
            model_cfg, checkpoint, _ = self.restorer_parts
            from mmengine.device import get_device
            model, _, _ = build_model_checked(model_cfg, f'{where}: restorer config')
            if checkpoint:
                load_checkpoint_checked(model, checkpoint, non_strict_option=False)
            return model.requires_grad_(False).eval().to(get_device())
        if part == 'r2s':
            return MODELS.build(dict(type='RestoreThenSegment', restorer=self.get('restorer'),
                                     segmentor=self.get('dt')))
        _, model_cfg, checkpoints = self.cell_cfgs[part]
        what = f'{where}: {"fine-tuned " if part == "ft" else ""}config'
        model, _, _ = build_model_checked(model_cfg, what)
        load_checkpoint_checked(model, checkpoints['segmentor'], non_strict_option=False)
        return model.eval()


def _params(cfg, what):
    """Total and trainable parameters of a config's model (meta device)."""
    from ..models.param_count import count_config
    try:
        with warnings.catch_warnings():  # mmseg's deprecation notes while building heads
            warnings.simplefilter('ignore')
            _, (trainable, total), _ = count_config(cfg)
    except Exception as e:
        raise BenchmarkError(f'the parameters of {what} cannot be counted on the meta device '
                             f'({one_line(e)})') from None
    return dict(total=total, trainable=trainable)


def run_protocol(rows, eval_sets, work_dir, fps_warmup=5, fps_images=50, say=print):
    """Evaluate every row on every evaluation set; write ``lq_protocol.json`` and ``.md``.

    Every check (rows, files, configs, data, class counts) runs before anything is evaluated.
    Cached cells whose content key matches are reused; others are evaluated and replaced.

    Args:
        rows (Sequence[Row]): the methods.
        eval_sets (Sequence[EvalSet]): the test sets.
        work_dir (str): output folder (cells cache, logs, results).
        fps_warmup (int): untimed ``test_step`` calls before each FPS measurement.
        fps_images (int): images of the set timed for each FPS (at most all of them).
        say (callable): progress output (``print``).

    Returns:
        dict: the result written to ``<work_dir>/lq_protocol.json``: ``rows[i]['cells'][set]
        [setting]['mIoU']`` (setting ``dt`` / ``r2s`` / ``ft``), ``rows[i]['cells'][set]
        ['restoration']['lq' | 'restored']['PSNR' | 'SSIM']``, ``rows[i]['params']``,
        ``rows[i]['fps']``, and ``summary`` (:func:`summarize`: ``summary[row][set]
        ['r2s_miou']``, ``['lq_psnr']``, ``['restored_psnr']``...; see ``docs/rass.md``).
    """
    check_rows(rows)
    if not eval_sets:
        raise BenchmarkError(f'no evaluation set given: choose from {", ".join(EVAL_SETS)}')
    if len({s.name for s in eval_sets}) < len(eval_sets):
        raise BenchmarkError('evaluation set names are not unique')
    for name, value, least in (('fps_warmup', fps_warmup, 0), ('fps_images', fps_images, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise BenchmarkError(f'{name} {value!r}: give a whole number >= {least}')
    work_dir = osp.abspath(work_dir)
    digests = FileDigests(osp.join(work_dir, 'file_digests.json'))
    sets = [load_eval_set(s) for s in eval_sets]
    for eval_set in sets:
        eval_set['data'] = data_digest(eval_set['files'], digests)
    device = device_name()
    code = package_code_digest()
    local, plan = {}, []
    for row in rows:
        restorer = restorer_parts(row) if row.restorer_config else None
        cfgs = _cell_cfgs(row, restorer)
        for setting, (cfg, model_cfg, checkpoints) in cfgs.items():
            for checkpoint in checkpoints.values():
                if checkpoint and checkpoint not in local:
                    local[checkpoint] = local_checkpoint(checkpoint)
            for eval_set in sets:
                wanted = _num_classes(model_cfg)
                if wanted is not None and wanted != len(eval_set['classes']):
                    raise BenchmarkError(
                        f'row {row.name!r}: the {SETTING_NAMES[setting]} model predicts '
                        f'{wanted} classes, evaluation set {eval_set["name"]} has '
                        f'{len(eval_set["classes"])}: evaluate it on a set of its dataset')
        if restorer is not None and restorer[1] and restorer[1] not in local:
            local[restorer[1]] = local_checkpoint(restorer[1])
        params = {s: _params(cfgs[s][0], f'row {row.name!r} ({SETTING_NAMES[s]})')
                  for s in ('dt', 'ft') if s in cfgs}
        plan.append((row, restorer, cfgs, params))

    def key_of(kind, cfg_text, model_cfg, checkpoints, eval_set):
        return dict(version=CACHE_VERSION, kind=kind, config=sha256_text(cfg_text),
                    checkpoints={k: digests(local[v]) for k, v in checkpoints.items() if v},
                    referenced=referenced_files(model_cfg, digests), data=eval_set['data'],
                    code=code, device=device)

    cache = CellCache(osp.join(work_dir, 'cells'))
    os.makedirs(work_dir, exist_ok=True)
    digests.save()
    say(f'{len(rows)} rows × {len(sets)} evaluation sets on {device}; mmseg logs in '
        f'{osp.join(work_dir, "logs")}', flush=True)
    result_rows = []
    for row, restorer, cfgs, params in plan:
        models = _Models(row, cfgs, restorer)
        row_cells = {}
        for eval_set in sets:
            row_cells[eval_set['name']] = cells_of_set = {}
            for setting, (cfg, model_cfg, checkpoints) in cfgs.items():
                runner_cfg = _runner_cfg(cfg, model_cfg, eval_set)
                key = key_of(setting, runner_cfg.pretty_text, model_cfg, checkpoints, eval_set)
                name = f'{_slug(eval_set["name"])}/{_slug(row.name)}/{setting}'
                cell, reason = cache.get(name, key)
                if cell is None:
                    cell = cache.put(name, key, _evaluate(models.get(setting), runner_cfg,
                                                          work_dir, fps_warmup, fps_images))
                    say(f'[{SETTING_NAMES[setting]}] {row.name} on {eval_set["name"]}: mIoU '
                        f'{cell["mIoU"]:.2f}, {_fmt_fps(cell["fps"])} FPS ({cell["seconds"]} s)'
                        + (f'; the cached cell was stale ({reason} changed)' if reason else ''),
                        flush=True)
                cells_of_set[setting] = strip_keys(cell)
            if restorer is not None and eval_set['degradation'] is not None:
                model_cfg, checkpoint, metric = restorer
                text = json.dumps(dict(model=model_cfg, metric=metric,
                                       dataset=eval_set['dataloader']['dataset']),
                                  sort_keys=True, default=str)
                key = key_of('restoration', text, model_cfg, dict(restorer=checkpoint),
                             eval_set)
                name = f'{_slug(eval_set["name"])}/{_slug(row.name)}/restoration'
                cell, _ = cache.get(name, key)
                if cell is None:
                    cell = cache.put(name, key, _restoration_metrics(
                        models.get('restorer'), eval_set, metric))
                    say(f'[restoration] {row.name} on {eval_set["name"]}: PSNR LQ '
                        f'{cell["lq"]["PSNR"]:.2f} dB, restored {cell["restored"]["PSNR"]:.2f} '
                        'dB', flush=True)
                cells_of_set['restoration'] = strip_keys(cell)
        method = 'ft' if 'ft' in cfgs else 'dt'
        first = sets[0]['name']
        result_rows.append(dict(
            name=row.name, paper=paper_row(row), spec=asdict(row),
            checkpoint_sha256={s: {k: digests(local[v]) for k, v in cfgs[s][2].items() if v}
                               for s in cfgs},
            params=dict(params[method], model=method), params_by_model=params,
            fps=dict(fps=row_cells[first][method]['fps'], model=method, eval_set=first),
            cells=row_cells))
    digests.save()
    result = dict(
        format=FORMAT, device=device, fps_warmup=fps_warmup, fps_images=fps_images,
        eval_sets=[dict(name=s['name'], config=s['config'], data_root=s['data_root'],
                        paper=s['paper'], num_images=len(s['files']), data_sha256=s['data'],
                        degradation=s['degradation']) for s in sets],
        rows=result_rows, paper_table1=dict(source=PAPER_SOURCE, rows=PAPER_TABLE1))
    paths = write_outputs(result, work_dir)
    say(f'wrote {", ".join(paths)}', flush=True)
    return result


PAPER_SOURCE = ('RASS paper, Table 1, as shown in the Ka1Guan/RASS README '
                '(asserts/rass_result.png); measured by the authors, on their GPU')


def _evaluate(model, runner_cfg, work_dir, fps_warmup, fps_images):
    """One cell: mmseg's test loop of ``model`` on the set, then its FPS."""
    runner = build_test_runner(runner_cfg, model, work_dir, name='lq_protocol')
    start = time.time()
    runner.call_hook('before_run')
    metrics = run_test_loop(runner, runner_cfg.test_dataloader, runner_cfg.test_evaluator,
                            runner_cfg.test_cfg)
    runner.call_hook('after_run')
    seconds = round(time.time() - start, 2)
    return dict(metrics, **measure_fps(model, runner_cfg.test_dataloader, fps_warmup,
                                       fps_images), seconds=seconds)


def _fmt(value, digits=2):
    return '–' if value is None else f'{value:.{digits}f}'


def _fmt_fps(value):
    return '–' if value is None else f'{value:.1f}'


def _millions(count):
    return f'{count / 1e6:.1f}M'


def format_table(result):
    """Markdown of a result: the Table 1 layout (mIoU per set × DT/R2S/FT, FPS, parameters)
    with the paper's rows beside the matching ones, then restoration PSNR/SSIM."""
    sets = result['eval_sets']
    papered = any(s['paper'] for s in sets)
    head = ['method'] + [f'{s["name"]} {SETTING_NAMES[k]}' for s in sets for k in SETTINGS] + [
        'FPS', 'params', 'trainable']
    lines = ['# Table 1 protocol: mIoU (%) on low-quality images', '',
             '| ' + ' | '.join(head) + ' |', '|---' + '|---:' * (len(head) - 1) + '|']
    for row in result['rows']:
        values = [_fmt(row['cells'].get(s['name'], {}).get(k, {}).get('mIoU'))
                  for s in sets for k in SETTINGS]
        lines.append('| ' + ' | '.join([row['name'], *values, _fmt_fps(row['fps']['fps']),
                                        _millions(row['params']['total']),
                                        _millions(row['params']['trainable'])]) + ' |')
        paper = PAPER_TABLE1.get(row['paper'] or '')
        if paper and papered:
            values = [_fmt(paper[s['paper']][i]) if s['paper'] else ''
                      for s in sets for i in range(3)]
            lines.append('| ' + ' | '.join(
                [f'*↳ {row["paper"]}, paper*', *[f'*{v}*' if v else '' for v in values],
                 f'*{_fmt_fps(paper["fps"])}*', f'*{paper["params"]}*',
                 f'*{paper["trainable"]}*']) + ' |')
    lines += ['', 'DT: the clean-trained model on the LQ images; R2S: the row\'s restorer '
              'restores, the clean-trained model segments; FT: the model fine-tuned on LQ '
              'images; – not evaluated.',
              f'FPS: images per second of the model\'s `test_step` on {result["device"]}, batch '
              f'1, at the test resolution of {sets[0]["name"]}, over its first '
              f'{min(result["fps_images"], sets[0]["num_images"])} images (loaded beforehand) '
              f'after {result["fps_warmup"]} warm-up calls; of the FT model (else DT). '
              'Parameters: total / requires_grad, of the FT model (else DT), counted on the '
              'meta device.']
    devices = sorted({r.get('device', result['device']) for r in result['rows']})
    if len(devices) > 1:
        lines.append(f'**Warning: the rows were measured on different devices '
                     f'({", ".join(devices)}); their FPS are not comparable.**')
    if papered:
        lines.append(f'*Italic rows*: {PAPER_SOURCE}; columns: ' + '; '.join(
            f'{s["name"]} = the paper\'s {PAPER_COLUMNS[s["paper"]]}' for s in sets
            if s['paper']) + '.')
    for s in sets:
        kind = ('clean images degraded here: ' + json.dumps(s['degradation'])
                if s['degradation'] else 'images read as they are (already low-quality)')
        lines.append(f'- {s["name"]}: {s["num_images"]} images, {kind}; `{s["config"]}`'
                     + (f', data_root `{s["data_root"]}`' if s['data_root'] else ''))
    restoration = [(r['name'], s['name'], r['cells'][s['name']]['restoration'])
                   for r in result['rows'] for s in sets
                   if 'restoration' in r['cells'].get(s['name'], {})]
    if restoration:
        lines += ['', '## Restoration (R2S restorer vs its LQ input, against the clean images)',
                  '', '| method | set | LQ PSNR | LQ SSIM | restored PSNR | restored SSIM |',
                  '|---|---|---:|---:|---:|---:|']
        for name, set_name, cell in restoration:
            lines.append(f'| {name} | {set_name} | {_fmt(cell["lq"]["PSNR"])} | '
                         f'{_fmt(cell["lq"]["SSIM"], 4)} | {_fmt(cell["restored"]["PSNR"])} | '
                         f'{_fmt(cell["restored"]["SSIM"], 4)} |')
    return '\n'.join(lines) + '\n'


def summarize(result):
    """The numbers of a result by row and set, flat: ``{row: {set: {'dt_miou', 'r2s_miou',
    'ft_miou', 'dt_fps', ..., 'lq_psnr', 'lq_ssim', 'restored_psnr', 'restored_ssim'}}}``
    (keys of cells that were not evaluated are absent)."""
    out = {}
    for row in result['rows']:
        for set_name, cells in row['cells'].items():
            flat = {f'{k}_{m.lower()}': cells[k][m] for k in SETTINGS if k in cells
                    for m in ('mIoU', 'fps')}
            for image, metrics in cells.get('restoration', {}).items():
                flat.update({f'{image}_{m.lower()}': v for m, v in metrics.items()})
            out.setdefault(row['name'], {})[set_name] = flat
    return out


def write_outputs(result, work_dir):
    """Write ``lq_protocol.json`` (with its :func:`summarize` as ``summary``) and
    ``lq_protocol.md``; return their paths."""
    result['summary'] = summarize(result)
    os.makedirs(work_dir, exist_ok=True)
    paths = [osp.join(work_dir, f'lq_protocol.{ext}') for ext in ('json', 'md')]
    dump_json(result, paths[0])
    with open(paths[1], 'w', encoding='utf-8') as f:
        f.write(format_table(result))
    return paths


def load_result(path):
    """Read an ``lq_protocol.json``, with clear errors."""
    return read_result(path, FORMAT, 'lq_protocol.json', 'tools/lq_protocol.py')


def merge(paths, work_dir):
    """One table of several results (rows of separate runs): rows in order, evaluation sets
    joined by name (a set of the same name must hold the same files).

    Returns:
        dict: the merged result (also written to ``<work_dir>/lq_protocol.json`` / ``.md``).
    """
    results = [load_result(p) for p in paths]
    sets, rows = {}, []
    for path, result in zip(paths, results):
        for s in result['eval_sets']:
            if s['name'] in sets and sets[s['name']]['data_sha256'] != s['data_sha256']:
                raise BenchmarkError(f'evaluation set {s["name"]} of {path} holds other files '
                                     'than in the results before it: the rows are not '
                                     'comparable')
            sets.setdefault(s['name'], s)
        for row in result['rows']:
            if any(r['name'] == row['name'] for r in rows):
                raise BenchmarkError(f'row {row["name"]!r} of {path} is in an earlier result '
                                     'too: rename one of them')
            rows.append(dict(row, device=result['device']))
    devices = sorted({r['device'] for r in rows})
    merged = dict(results[0], eval_sets=list(sets.values()), rows=rows,
                  device=devices[0] if len(devices) == 1 else ' / '.join(devices),
                  merged_from=[osp.abspath(p) for p in paths])
    write_outputs(merged, work_dir)
    return merged


__all__ = ['EVAL_SETS', 'PAPER_TABLE1', 'EvalSet', 'Row', 'load_rows', 'merge',
           'parse_eval_set', 'run_protocol', 'summarize']
