"""Robustness benchmark: any mmseg config + checkpoint on clean and degraded test images.

Every *cell* (the clean split, or one degradation family at one severity) is evaluated with
mmseg's own runner and evaluator; the degradation is the deterministic ``Degrade`` transform
inserted right after the image-loading transform of the test pipeline. Each finished cell is
cached as JSON under ``<work_dir>/cells/`` so an interrupted run resumes where it stopped.

Summary figures (as in mmdetection's corruption benchmark):

* mPC = mean mIoU over every evaluated family × severity (the clean split excluded);
* rPC = mPC / clean mIoU (a ratio; shown in percent in the tables).

``tools/benchmark_robustness.py`` is the command-line front end; ``docs/robustness.md``
shows how to use it.
"""
import copy
import json
import os
import os.path as osp
import time

import numpy as np

from ..datasets.degraded_dataset import plain_dataset_cfg
from ..transforms.degradation_pipeline import FAMILIES

SEVERITIES = (1, 2, 3, 4, 5)
LOADING_TRANSFORMS = ('LoadImage', 'LoadImageFromFile')
RESULT_FORMAT = 'mmseg_rass.robustness.v1'
CLEAN = 'clean'


def cell_name(family, severity):
    """File-name stem of a cell: ``'clean'`` or ``'<family>_s<severity>'``."""
    return CLEAN if family == CLEAN else f'{family}_s{severity}'


def cell_list(families, severities):
    """The cells of a run, clean first: list of ``(family, severity)``, clean = ``('clean', 0)``."""
    return [(CLEAN, 0)] + [(f, s) for f in families for s in severities]


def resolve_config(config):
    """Path of a config file; ``mmseg::<dir>/<name>.py`` names a config shipped with mmseg."""
    if config.startswith('mmseg::'):
        import mmseg
        return osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', config[len('mmseg::'):])
    return config


def check_request(config, checkpoint, families, severities):
    """Raise one clear error for a missing config/checkpoint, unknown family or bad severity.

    Args:
        config (str): path of an mmseg config file, or ``mmseg::<dir>/<name>.py``.
        checkpoint (str): path (or http(s) URL) of a checkpoint loadable by mmengine.
        families (Sequence[str]): degradation families, each one of :data:`FAMILIES`.
        severities (Sequence[int]): severities, each in 1–5.
    """
    if not osp.isfile(resolve_config(config)):
        raise FileNotFoundError(
            f'config file {resolve_config(config)} does not exist: pass the path of an mmseg '
            'config (e.g. configs/baseline/fpn_r18_demo_cityscapes.py or '
            'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py)')
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist: pass a .pth file '
                                'written by tools/train.py or downloaded from the model zoo')
    if not families:
        raise ValueError(f'no degradation family given: choose from {", ".join(FAMILIES)}')
    for family in families:
        if family not in FAMILIES:
            raise ValueError(f'unknown degradation family {family!r}: choose from '
                             f'{", ".join(FAMILIES)}')
    if not severities:
        raise ValueError('no severity given: choose from 1 2 3 4 5')
    for severity in severities:
        if isinstance(severity, bool) or severity not in SEVERITIES:
            raise ValueError(f'severity {severity!r} is out of range: choose integers from 1 to 5')


def _transform_name(transform):
    kind = transform.get('type') if isinstance(transform, dict) else None
    kind = getattr(kind, '__name__', kind)
    return kind.split('.')[-1] if isinstance(kind, str) else None


def _pipelines(dataset_cfg):
    """Every pipeline (list) of a dataset config and of the datasets it wraps (``dataset=`` of
    RepeatDataset/MultiImageMixDataset, ``datasets=`` of ConcatDataset)."""
    if dataset_cfg.get('pipeline'):
        yield dataset_cfg['pipeline']
    children = [dataset_cfg['dataset']] if isinstance(dataset_cfg.get('dataset'), dict) else []
    children += [d for d in dataset_cfg.get('datasets') or [] if isinstance(d, dict)]
    for child in children:
        yield from _pipelines(child)


def clean_test_pipeline(dataset_cfg):
    """Check the test pipelines and remove their own ``Degrade`` transforms, in place.

    A ``DegradedDataset`` (an LQ evaluation set) is replaced by the dataset it degrades.

    LQ configs (e.g. ``*_lq.py``) degrade their test images with a fixed preset; the benchmark
    sets the degradation per cell instead, so the clean cell sees clean images.

    Args:
        dataset_cfg (dict): a dataset config (``test_dataloader.dataset``).

    Returns:
        list[dict]: the removed ``Degrade`` configs.
    """
    removed = []
    plain, degradation = plain_dataset_cfg(dataset_cfg)
    if degradation is not None:  # an LQ evaluation set: benchmark its clean version
        dataset_cfg.clear()
        dataset_cfg.update(plain)
        removed.append(dict(degradation))
    for pipeline in _pipelines(dataset_cfg):
        for transform in [t for t in pipeline if _transform_name(t) == 'Degrade']:
            if transform.get('keep_hq'):
                raise ValueError('the test pipeline keeps the clean image (Degrade keep_hq=True), '
                                 'so it evaluates a restorer: pass a segmentation config')
            pipeline.remove(transform)
            removed.append(dict(transform))
    names = [_transform_name(t) for p in _pipelines(dataset_cfg) for t in p]
    if not set(names) & set(LOADING_TRANSFORMS):
        raise ValueError(f'no {" or ".join(LOADING_TRANSFORMS)} transform found in the pipeline '
                         'of test_dataloader.dataset: the degradation is inserted right after it')
    return removed


def insert_degradation(dataset_cfg, family, severity):
    """Insert ``Degrade`` right after the image-loading transform of a dataset config, in place.

    Wrapped datasets are handled recursively; only pipelines that load images get the transform.

    Args:
        dataset_cfg (dict): a dataset config (``test_dataloader.dataset``).
        family (str): degradation family (``Degrade`` preset).
        severity (int): severity 1–5.

    Returns:
        int: how many pipelines received the transform.
    """
    inserted = 0
    for pipeline in _pipelines(dataset_cfg):
        loaders = [i for i, t in enumerate(pipeline) if _transform_name(t) in LOADING_TRANSFORMS]
        if loaders:
            pipeline.insert(loaders[0] + 1, dict(type='Degrade', preset=family,
                                                 severity=severity, deterministic=True))
            inserted += 1
    return inserted


def _use_per_class_metric(evaluator_cfg):
    """The first ``IoUMetric`` of a test evaluator as :class:`PerClassIoUMetric` (same arguments).

    Other metrics of a list (e.g. ``CityscapesMetric``, which writes files) are dropped.
    """
    metrics = evaluator_cfg if isinstance(evaluator_cfg, list) else [evaluator_cfg]
    swapped = []
    for metric in metrics:
        metric = dict(metric)
        if _transform_name(metric) in ('IoUMetric', 'PerClassIoUMetric'):
            metric['type'] = 'PerClassIoUMetric'
            swapped.append(metric)
    if not swapped:
        raise ValueError(f'test_evaluator {evaluator_cfg} has no IoUMetric: the benchmark needs '
                         "mmseg's IoUMetric (set test_evaluator = dict(type='IoUMetric'))")
    return swapped[0]


def load_config(config, cfg_options=None):
    """Load a config (``mmseg::`` bases allowed) and apply ``--cfg-options``.

    The test pipeline is checked and any ``Degrade`` in it removed (:func:`clean_test_pipeline`).
    """
    from mmengine.config import Config
    cfg = Config.fromfile(resolve_config(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    for key in ('test_dataloader', 'test_evaluator', 'test_cfg'):
        if cfg.get(key) is None:
            raise ValueError(f'config {config} has no {key}: the benchmark runs mmseg\'s test '
                             'loop; use a config that defines test_dataloader, test_evaluator '
                             'and test_cfg (every mmseg model-zoo config does)')
    for transform in clean_test_pipeline(cfg.test_dataloader.dataset):
        print(f'note: removed {transform} from the test pipeline of {config}; the benchmark '
              'sets the degradation of each cell', flush=True)
    return cfg


def build_cell_config(cfg, family, severity, checkpoint, work_dir):
    """The config that evaluates one cell.

    Args:
        cfg (Config): the model's config (see :func:`load_config`); not modified.
        family (str): ``'clean'`` or a degradation family.
        severity (int): 1–5 (ignored for ``'clean'``).
        checkpoint (str): checkpoint loaded with ``load_from``.
        work_dir (str): the benchmark's work dir; the cell's runner logs under
            ``<work_dir>/logs/<cell>``.

    Returns:
        Config: a copy with the degradation inserted (:func:`insert_degradation`),
        ``PerClassIoUMetric`` as test evaluator and the checkpoint to load.
    """
    cfg = copy.deepcopy(cfg)
    name = cell_name(family, severity)
    if family != CLEAN:
        insert_degradation(cfg.test_dataloader.dataset, family, severity)
    cfg.test_evaluator = _use_per_class_metric(cfg.test_evaluator)
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.launcher = 'none'
    cfg.work_dir = osp.join(work_dir, 'logs', name)
    cfg.experiment_name = f'robustness_{name}'
    cfg.setdefault('default_scope', 'mmseg')
    return cfg


def evaluate_cell(cell_cfg):
    """Run mmseg's test loop on one cell config; return its metrics.

    Returns:
        dict: ``aAcc``, ``mIoU``, ``mAcc`` (percent) and ``IoU`` / ``Acc`` (dict class → percent
        or ``None`` for a class absent from prediction and ground truth).
    """
    from mmengine.runner import Runner
    metrics = Runner.from_cfg(cell_cfg).test()
    metrics = {key.split('/')[-1]: value for key, value in metrics.items()}
    return dict(
        aAcc=float(metrics['aAcc']), mIoU=float(metrics['mIoU']), mAcc=float(metrics['mAcc']),
        IoU=metrics['IoU_per_class'], Acc=metrics['Acc_per_class'])


def _dump_json(obj, path):
    """Write JSON atomically (an interrupted write never leaves a truncated file)."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _read_cell(path, source):
    """A cached cell, or ``None`` when absent/unreadable; error when it is another model's."""
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            cell = json.load(f)
    except (OSError, ValueError):
        print(f'  {path} is unreadable: evaluating the cell again', flush=True)
        return None
    if cell.get('source') != source:
        raise ValueError(
            f'{path} holds a result of another run ({cell.get("source")}), not of {source}: '
            'pass another --work-dir or delete that folder')
    return cell


def run_benchmark(config, checkpoint, families=FAMILIES, severities=SEVERITIES, work_dir=None,
                  cfg_options=None):
    """Evaluate the clean split and every family × severity; write JSON, Markdown and PNG.

    Finished cells are read from ``<work_dir>/cells/<cell>.json`` instead of being evaluated
    again. Progress is printed per cell.

    Args:
        config (str): mmseg config (may inherit ``mmseg::`` configs), or
            ``mmseg::<dir>/<name>.py`` for a config shipped with mmseg.
        checkpoint (str): checkpoint path or URL.
        families (Sequence[str]): degradation families (:data:`FAMILIES`).
        severities (Sequence[int]): severities in 1–5.
        work_dir (str, optional): output folder; default
            ``work_dirs/robustness/<config name>``.
        cfg_options (dict, optional): config overrides (``--cfg-options``).

    Returns:
        dict: the result written to ``<work_dir>/robustness.json`` (see :func:`make_result`).
    """
    check_request(config, checkpoint, families, severities)
    families = list(dict.fromkeys(families))
    severities = sorted(set(int(s) for s in severities))
    model = osp.splitext(osp.basename(config))[0]
    work_dir = osp.abspath(work_dir or osp.join('work_dirs', 'robustness', model))
    os.makedirs(osp.join(work_dir, 'cells'), exist_ok=True)
    cfg = load_config(config, cfg_options)
    source = dict(config=config if config.startswith('mmseg::') else osp.abspath(config),
                  checkpoint=checkpoint if '://' in checkpoint else osp.abspath(checkpoint),
                  cfg_options=cfg_options or {})
    source = json.loads(json.dumps(source))  # the form it has once read back from a cache
    cells = []
    todo = cell_list(families, severities)
    for index, (family, severity) in enumerate(todo, 1):
        name = cell_name(family, severity)
        label = CLEAN if family == CLEAN else f'{family} severity {severity}'
        path = osp.join(work_dir, 'cells', f'{name}.json')
        cell = _read_cell(path, source)
        if cell is not None:
            print(f'[{index}/{len(todo)}] {label}: cached in {path}, skipped '
                  f'(mIoU {cell["mIoU"]:.2f})', flush=True)
        else:
            print(f'[{index}/{len(todo)}] {label}: evaluating', flush=True)
            start = time.time()
            metrics = evaluate_cell(build_cell_config(cfg, family, severity, checkpoint, work_dir))
            cell = dict(family=family, severity=severity, source=source, **metrics)
            _dump_json(cell, path)
            print(f'[{index}/{len(todo)}] {label}: mIoU {cell["mIoU"]:.2f} '
                  f'({time.time() - start:.1f} s)', flush=True)
        cells.append(cell)
    result = make_result(model, source, cells)
    paths = write_outputs(result, work_dir)
    summary = result['summary']
    print(f'clean mIoU {summary["clean_mIoU"]:.2f}, mPC {summary["mPC"]:.2f}, '
          f'rPC {_percent(summary["rPC"])}; wrote {", ".join(paths)}', flush=True)
    return result


def summarize(cells):
    """Summary figures of a list of cells.

    Args:
        cells (list[dict]): each with ``family``, ``severity`` and ``mIoU``; exactly one with
            family ``'clean'``.

    Returns:
        dict: ``clean_mIoU``, ``mPC`` (mean mIoU of the degraded cells), ``rPC``
        (mPC / clean mIoU; ``None`` when clean mIoU is 0) and ``family_mIoU`` (per family, the
        mean over its severities).
    """
    clean = [c['mIoU'] for c in cells if c['family'] == CLEAN]
    degraded = [c for c in cells if c['family'] != CLEAN]
    if len(clean) != 1 or not degraded:
        raise ValueError('a result needs exactly one clean cell and at least one degraded cell')
    families = list(dict.fromkeys(c['family'] for c in degraded))
    mpc = float(np.mean([c['mIoU'] for c in degraded]))
    return dict(
        clean_mIoU=clean[0],
        mPC=mpc,
        rPC=mpc / clean[0] if clean[0] > 0 else None,
        family_mIoU={f: float(np.mean([c['mIoU'] for c in degraded if c['family'] == f]))
                     for f in families})


def make_result(model, source, cells):
    """The benchmark result: model name, source, cells (without their ``source``), summary."""
    cells = [{k: v for k, v in c.items() if k != 'source'} for c in cells]
    return dict(format=RESULT_FORMAT, model=model, **source,
                families=list(dict.fromkeys(c['family'] for c in cells if c['family'] != CLEAN)),
                severities=sorted({c['severity'] for c in cells if c['family'] != CLEAN}),
                classes=list(cells[0]['IoU']), cells=cells, summary=summarize(cells))


def load_result(path):
    """Read a ``robustness.json`` written by :func:`run_benchmark`, with clear errors."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'result file {path} does not exist: pass a robustness.json '
                                'written by tools/benchmark_robustness.py')
    try:
        with open(path, encoding='utf-8') as f:
            result = json.load(f)
    except ValueError as e:
        raise ValueError(f'{path} is not valid JSON ({e}): pass a robustness.json written by '
                         'tools/benchmark_robustness.py') from e
    if not isinstance(result, dict) or result.get('format') != RESULT_FORMAT:
        raise ValueError(f'{path} is not a robustness result ({RESULT_FORMAT}): pass a '
                         'robustness.json written by tools/benchmark_robustness.py')
    return result


def _percent(ratio):
    return 'n/a' if ratio is None else f'{100 * ratio:.1f} %'


def _fmt(value):
    return '–' if value is None else f'{value:.2f}'


def _cell_miou(result, family, severity):
    for c in result['cells']:
        if c['family'] == family and (family == CLEAN or c['severity'] == severity):
            return c['mIoU']
    return None


def format_table(result):
    """Markdown report of one result: mIoU per family × severity, summary, per-class IoU."""
    summary, severities = result['summary'], result['severities']
    lines = [f'# Robustness of {result["model"]}', '',
             f'clean mIoU **{summary["clean_mIoU"]:.2f}** · mPC **{summary["mPC"]:.2f}** · '
             f'rPC **{_percent(summary["rPC"])}**', '',
             '| family | clean | ' + ' | '.join(f's{s}' for s in severities) + ' | mean |',
             '|---' * (len(severities) + 3) + '|']
    for family in result['families']:
        values = [_cell_miou(result, family, s) for s in severities]
        lines.append(f'| {family} | {summary["clean_mIoU"]:.2f} | '
                     + ' | '.join(_fmt(v) for v in values)
                     + f' | {summary["family_mIoU"][family]:.2f} |')
    lines += ['', 'mIoU in %; mPC = mean over every family × severity above; '
              'rPC = mPC / clean mIoU.', '', '## Per-class IoU', '',
              '| class | clean | degraded mean | drop |', '|---|---|---|---|']
    clean = next(c for c in result['cells'] if c['family'] == CLEAN)
    degraded = [c for c in result['cells'] if c['family'] != CLEAN]
    for name in result['classes']:
        values = [c['IoU'][name] for c in degraded if c['IoU'].get(name) is not None]
        mean = float(np.mean(values)) if values else None
        drop = None if mean is None or clean['IoU'][name] is None else clean['IoU'][name] - mean
        lines.append(f'| {name} | {_fmt(clean["IoU"][name])} | {_fmt(mean)} | {_fmt(drop)} |')
    lines.append('')
    lines.append(f'config `{result["config"]}`, checkpoint `{result["checkpoint"]}`')
    return '\n'.join(lines) + '\n'


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_result(result, path):
    """PNG of mIoU against severity, one line per family; severity 0 and the dashed line = clean.

    Args:
        result (dict): a benchmark result.
        path (str): output PNG path.
    """
    plt = _pyplot()
    summary, severities = result['summary'], result['severities']
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.axhline(summary['clean_mIoU'], color='black', linestyle='--', linewidth=1,
               label=f'clean ({summary["clean_mIoU"]:.2f})')
    for family in result['families']:
        xs = [0] + [s for s in severities if _cell_miou(result, family, s) is not None]
        ys = [summary['clean_mIoU']] + [_cell_miou(result, family, s) for s in xs[1:]]
        ax.plot(xs, ys, marker='o', label=family)
    ax.set_xticks([0] + severities, ['clean'] + [str(s) for s in severities])
    ax.set_xlabel('severity')
    ax.set_ylabel('mIoU (%)')
    ax.set_ylim(bottom=0)
    ax.set_title(f'{result["model"]}: mPC {summary["mPC"]:.2f}, rPC {_percent(summary["rPC"])}')
    ax.grid(alpha=0.3)
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(result, work_dir):
    """Write ``robustness.json``, ``robustness.md`` and ``robustness.png``; return their paths."""
    paths = [osp.join(work_dir, f'robustness.{ext}') for ext in ('json', 'md', 'png')]
    _dump_json(result, paths[0])
    with open(paths[1], 'w', encoding='utf-8') as f:
        f.write(format_table(result))
    plot_result(result, paths[2])
    return paths


def _model_names(results, names):
    if names is None:
        names = [r['model'] for r in results]
        if len(set(names)) < len(names):
            names = [f'{n} ({i})' for i, n in enumerate(names, 1)]
    elif len(names) != len(results):
        raise ValueError(f'{len(names)} names given for {len(results)} result files: pass one '
                         'name per file (or none)')
    return list(names)


def format_compare_table(results, names):
    """Markdown side-by-side table: clean, per-family mean, mPC and rPC for each model."""
    families = list(dict.fromkeys(f for r in results for f in r['families']))
    lines = ['# Robustness comparison', '', '| | ' + ' | '.join(names) + ' |',
             '|---' * (len(names) + 1) + '|',
             '| clean mIoU | ' + ' | '.join(f'{r["summary"]["clean_mIoU"]:.2f}'
                                            for r in results) + ' |']
    for family in families:
        lines.append(f'| {family} (mean) | ' + ' | '.join(
            _fmt(r['summary']['family_mIoU'].get(family)) for r in results) + ' |')
    lines.append('| **mPC** | ' + ' | '.join(f'**{r["summary"]["mPC"]:.2f}**'
                                             for r in results) + ' |')
    lines.append('| **rPC** | ' + ' | '.join(f'**{_percent(r["summary"]["rPC"])}**'
                                             for r in results) + ' |')
    lines += ['', 'mIoU in %; family (mean) = mean over its severities '
              + ', '.join(f'{n}: {r["severities"]}' for n, r in zip(names, results))
              + '; mPC = mean over every family × severity; rPC = mPC / clean mIoU.']
    cell_sets = {frozenset((c['family'], c['severity']) for c in r['cells']) for r in results}
    if len(cell_sets) > 1:
        lines += ['', '**Warning: the models were evaluated on different families / severities; '
                  'their mPC and rPC are not comparable.**']
    return '\n'.join(lines) + '\n'


def plot_compare(results, names, path):
    """PNG with one panel per family: mIoU against severity, one line per model."""
    plt = _pyplot()
    families = list(dict.fromkeys(f for r in results for f in r['families']))
    cols = min(3, len(families))
    rows = -(-len(families) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, family in zip(axes.flat, families):
        for i, (result, name) in enumerate(zip(results, names)):
            color = colors[i % len(colors)]
            clean = result['summary']['clean_mIoU']
            ax.axhline(clean, color=color, linestyle='--', linewidth=0.8)
            xs = [s for s in result['severities'] if _cell_miou(result, family, s) is not None]
            if xs:
                ax.plot([0] + xs, [clean] + [_cell_miou(result, family, s) for s in xs],
                        marker='o', color=color, label=name)
        ax.set_title(family)
        ax.set_xticks(range(6), ['clean', '1', '2', '3', '4', '5'])
        ax.set_xlabel('severity')
        ax.set_ylabel('mIoU (%)')
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    for ax in list(axes.flat)[len(families):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(paths, work_dir, names=None):
    """Side-by-side Markdown table and plot of several ``robustness.json`` files.

    Args:
        paths (Sequence[str]): result files.
        work_dir (str): output folder for ``compare.md`` and ``compare.png``.
        names (Sequence[str], optional): one display name per file; default the model names.

    Returns:
        tuple[str, str]: paths of the Markdown table and the PNG.
    """
    results = [load_result(p) for p in paths]
    names = _model_names(results, names)
    os.makedirs(work_dir, exist_ok=True)
    md, png = osp.join(work_dir, 'compare.md'), osp.join(work_dir, 'compare.png')
    with open(md, 'w', encoding='utf-8') as f:
        f.write(format_compare_table(results, names))
    plot_compare(results, names, png)
    return md, png
