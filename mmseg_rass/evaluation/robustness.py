"""Robustness benchmark: any mmseg config + checkpoint on clean and corrupted test images.

A *cell* is the clean split, or one corruption at one severity. Corruptions are the 19
ImageNet-C ones (``Corrupt``, :mod:`mmseg_rass.transforms.imagenet_c`) and the five
Real-ESRGAN-style families (``Degrade(preset, severity, deterministic=True)``), inserted right
after the image-loading transform of the test pipeline.

One run builds the model and loads the checkpoint once (strictly), builds one mmengine
``Runner`` and evaluates every cell with mmseg's test loop on a new test dataloader. Each
finished cell is cached as JSON under ``<work_dir>/cells/`` (:class:`~.cells.CellCache`), keyed
by content: SHA-256 of the checkpoint's bytes (a URL's own download), the resolved config text,
the files the model config names, the corruption and the code computing it, and the name and
contents of every test image and label (:mod:`.cells`).

Summary figures (as in mmdetection's corruption benchmark):

* mPC = mean mIoU over every evaluated corruption × severity (the clean split excluded);
* rPC = mPC / clean mIoU (a ratio; shown in percent in the tables);
* mPC per category and per corruption (the mean over their cells).

``tools/benchmark_robustness.py`` is the command-line front end; ``docs/robustness.md``
shows how to use it.
"""
import copy
import json
import os
import os.path as osp
import sys
import textwrap
import time

import numpy as np

from ..datasets.degraded_dataset import plain_dataset_cfg
from ..transforms.degradation_pipeline import FAMILIES
from ..transforms.imagenet_c import BENCHMARK, CATEGORIES, CORRUPTIONS
from .cells import (BenchmarkError, CellCache, FileDigests, build_dataset, build_model_checked,
                    build_test_runner, check_checkpoint_arg, data_digest, dataset_files,
                    dump_json, load_config_file, local_checkpoint, names_list, read_result,
                    referenced_files, resolve_config, run_test_loop, runner_model_cfg, sha256_text,
                    source_digest, strip_keys, type_name, use_per_class_metric)

SEVERITIES = (1, 2, 3, 4, 5)
LOADING_TRANSFORMS = ('LoadImage', 'LoadImageFromFile')
RESULT_FORMAT = 'mmseg_rass.robustness.v2'
CACHE_VERSION = 3  # bump when a change of the code changes cached cell values
CLEAN = 'clean'
REALESRGAN = tuple(f'realesrgan_{family}' for family in FAMILIES)
CATEGORY_OF = {name: category for category, names in CATEGORIES.items() for name in names}
CATEGORY_OF.update({name: 'realesrgan' for name in REALESRGAN})
CATEGORY_ORDER = (*CATEGORIES, 'realesrgan')
GROUPS = dict(CATEGORIES, realesrgan=REALESRGAN, benchmark=BENCHMARK, all=CORRUPTIONS)
RENAMED = {family: f'realesrgan_{family}' for family in ('jpeg', 'downsample', 'mixed')}
DEFAULT_SELECTION = ('benchmark', )


def select_corruptions(names):
    """Expand ``--families`` names into corruption names (in order, without repeats).

    Args:
        names (Sequence[str]): corruption names (:data:`CORRUPTIONS`, :data:`REALESRGAN`) and
            group names (:data:`GROUPS`: ``noise``, ``blur``, ``weather``, ``digital``,
            ``holdout``, ``realesrgan``, ``benchmark`` = the 15, ``all`` = the 19).

    Returns:
        list[str]: corruption names.
    """
    if not names:
        raise BenchmarkError('no corruption given: pass corruption or category names, e.g. '
                             '--families benchmark')
    selected = []
    for name in names:
        if name in GROUPS:
            selected += GROUPS[name]
        elif name in CATEGORY_OF:
            selected.append(name)
        elif name in RENAMED:
            also = " (ImageNet-C's JPEG is 'jpeg_compression')" if name == 'jpeg' else ''
            raise BenchmarkError(f'the Real-ESRGAN family {name!r} is now named '
                                 f'{RENAMED[name]!r}{also}: pass --families {RENAMED[name]}')
        else:
            raise BenchmarkError(
                f'unknown corruption {name!r}: choose from the categories '
                f'{", ".join(GROUPS)}, the corruptions {", ".join(CORRUPTIONS)} or '
                f'{", ".join(REALESRGAN)}')
    return list(dict.fromkeys(selected))


def corruption_transform(name, severity):
    """The pipeline transform of one cell: ``None`` for clean, else ``Corrupt``/``Degrade``."""
    if name == CLEAN:
        return None
    if name in REALESRGAN:
        return dict(type='Degrade', preset=name[len('realesrgan_'):], severity=severity,
                    deterministic=True)
    return dict(type='Corrupt', corruption=name, severity=severity)


def transform_code_digest(transform):
    """SHA-256 of the source files that compute a cell's transform (``None`` for clean), so a
    change of the corruption code recomputes the cells it made."""
    if transform is None:
        return None
    from .. import transforms
    return source_digest(osp.dirname(transforms.__file__),
                         'imagenet_c' if transform['type'] == 'Corrupt' else 'degradation')


def cell_name(corruption, severity):
    """File-name stem of a cell: ``'clean'`` or ``'<corruption>_s<severity>'``."""
    return CLEAN if corruption == CLEAN else f'{corruption}_s{severity}'


def cell_list(corruptions, severities):
    """The cells of a run, clean first: ``(corruption, severity)``, clean = ``('clean', 0)``."""
    return [(CLEAN, 0)] + [(c, s) for c in corruptions for s in severities]


def check_request(config, checkpoint, families, severities):
    """Check the files and options; return the selected corruptions and sorted severities.

    Args:
        config (str): path of an mmseg config file, or ``mmseg::<dir>/<name>.py``.
        checkpoint (str): path (or http(s) URL) of a checkpoint.
        families (Sequence[str]): ``--families`` names (see :func:`select_corruptions`).
        severities (Sequence[int]): severities, each in 1–5.

    Returns:
        tuple[list[str], list[int]]: corruptions and severities.
    """
    if not osp.isfile(resolve_config(config)):
        raise BenchmarkError(
            f'config file {resolve_config(config)} does not exist: pass the path of an mmseg '
            'config (e.g. configs/baseline/fpn_r18_demo_cityscapes.py or '
            'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py)')
    check_checkpoint_arg(checkpoint)
    corruptions = select_corruptions(families)
    if not severities:
        raise BenchmarkError('no severity given: choose from 1 2 3 4 5')
    for severity in severities:
        if isinstance(severity, bool) or severity not in SEVERITIES:
            raise BenchmarkError(f'severity {severity!r} is out of range: choose integers from '
                                 '1 to 5')
    return corruptions, sorted(set(int(s) for s in severities))


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
    """Check the test pipelines and remove their own ``Degrade``/``Corrupt`` transforms, in place.

    A ``DegradedDataset`` (an LQ evaluation set) is replaced by the dataset it degrades: LQ
    configs degrade their test images with a fixed preset, the benchmark sets the corruption
    per cell instead, so the clean cell sees clean images.

    Args:
        dataset_cfg (dict): a dataset config (``test_dataloader.dataset``).

    Returns:
        list[dict]: the removed transforms.
    """
    removed = []
    plain, degradation = plain_dataset_cfg(dataset_cfg)
    if degradation is not None:
        dataset_cfg.clear()
        dataset_cfg.update(plain)
        removed.append(dict(degradation))
    for pipeline in _pipelines(dataset_cfg):
        for transform in [t for t in pipeline if type_name(t) in ('Degrade', 'Corrupt')]:
            if transform.get('keep_hq'):
                raise BenchmarkError(
                    'the test pipeline keeps the clean image (Degrade keep_hq=True), so it '
                    'evaluates a restorer: pass a segmentation config')
            pipeline.remove(transform)
            removed.append(dict(transform))
    names = [type_name(t) for p in _pipelines(dataset_cfg) for t in p]
    if not set(names) & set(LOADING_TRANSFORMS):
        raise BenchmarkError(
            f'no {" or ".join(LOADING_TRANSFORMS)} transform found in the pipeline of '
            'test_dataloader.dataset: the corruption is inserted right after it')
    return removed


def insert_transform(dataset_cfg, transform):
    """Insert ``transform`` right after the image-loading transform of a dataset config, in place.

    Wrapped datasets are handled recursively; only pipelines that load images get it.

    Returns:
        int: how many pipelines received the transform.
    """
    inserted = 0
    for pipeline in _pipelines(dataset_cfg):
        loaders = [i for i, t in enumerate(pipeline) if type_name(t) in LOADING_TRANSFORMS]
        if loaders:
            pipeline.insert(loaders[0] + 1, dict(transform))
            inserted += 1
    return inserted


def load_config(config, cfg_options=None):
    """Load a config (``mmseg::`` bases allowed), apply ``--cfg-options`` and prepare its test part.

    Any ``Degrade``/``Corrupt`` of the test pipeline is removed (:func:`clean_test_pipeline`)
    and the test evaluator becomes ``PerClassIoUMetric``.

    Returns:
        tuple[Config, list[str]]: the config and one note per removed transform.
    """
    cfg = load_config_file(config, cfg_options)
    for key in ('test_dataloader', 'test_evaluator', 'test_cfg', 'model'):
        if cfg.get(key) is None:
            raise BenchmarkError(
                f"config {config} has no {key}: the benchmark runs mmseg's test loop; use a "
                'config that defines model, test_dataloader, test_evaluator and test_cfg '
                '(every mmseg model-zoo config does)')
    notes = [f'note: removed {transform} from the test pipeline of {config}; the benchmark '
             'sets the corruption of each cell'
             for transform in clean_test_pipeline(cfg.test_dataloader.dataset)]
    cfg.test_evaluator = use_per_class_metric(cfg.test_evaluator)
    return cfg, notes


class _Progress:
    """Progress over every image of the cells to evaluate, on rank 0: a tqdm bar on a terminal
    and one line per finished cell (with the ETA of the whole run)."""

    def __init__(self, total, enabled):
        from tqdm import tqdm
        self.total, self.done, self.enabled, self.start = total, 0, enabled, time.time()
        self.bar = tqdm(total=total, unit='img', disable=not (enabled and sys.stderr.isatty()),
                        file=sys.stderr, dynamic_ncols=True, leave=False)

    def hook(self, world_size):
        """An mmengine hook advancing the bar by the images of each test iteration."""
        from mmengine.hooks import Hook
        bar = self.bar

        class ProgressHook(Hook):
            priority = 'LOWEST'

            def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                bar.update(len(outputs or ()) * world_size)

        return ProgressHook()

    def cell_done(self, images, text):
        """Count a finished cell of ``images`` images and print ``text`` with the ETA."""
        self.done += images
        self.bar.n = self.done
        self.bar.refresh()
        left = (time.time() - self.start) / self.done * (self.total - self.done)
        if self.enabled:
            self.bar.write(f'{text}, ETA {time.strftime("%H:%M:%S", time.gmtime(left))}',
                           file=sys.stdout)
            sys.stdout.flush()

    def close(self):
        self.bar.close()


def evaluate_cell(runner, cfg, transform):
    """Run mmseg's test loop of ``runner`` on the test set with ``transform`` inserted.

    Returns:
        dict: ``aAcc``, ``mIoU``, ``mAcc`` (percent) and ``IoU`` / ``Acc`` (dict class → percent
        or ``None`` for a class absent from prediction and ground truth).
    """
    dataloader = copy.deepcopy(cfg.test_dataloader)
    if transform is not None:
        insert_transform(dataloader['dataset'], transform)
    return run_test_loop(runner, dataloader, cfg.test_evaluator, cfg.test_cfg)


def _init_distributed(launcher, cfg):
    """Start the process group (before anything prints); return ``(rank, world_size)``."""
    from mmengine.dist import get_dist_info, init_dist, is_distributed
    if launcher != 'none' and not is_distributed():
        init_dist(launcher, **cfg.get('env_cfg', {}).get('dist_cfg', {}))
    return get_dist_info()


def _cached_cells(cache, corruptions, severities, base_key):
    """Split the cells of a run into cached ones and ones to evaluate.

    Returns:
        tuple[dict, list, dict]: cached cells by name, ``(corruption, severity, key)`` to
        evaluate, and the names of cached cells that no longer match, by what changed.
    """
    cells, todo, stale = {}, [], {}
    for corruption, severity in cell_list(corruptions, severities):
        transform = corruption_transform(corruption, severity)
        key = dict(base_key, corruption=transform, code=transform_code_digest(transform))
        name = cell_name(corruption, severity)
        cell, reason = cache.get(name, key)
        if cell is not None:
            cells[name] = cell
        else:
            todo.append((corruption, severity, key))
            if reason:
                stale.setdefault(reason, []).append(name)
    return cells, todo, stale


def run_benchmark(config, checkpoint, families=DEFAULT_SELECTION, severities=SEVERITIES,
                  work_dir=None, cfg_options=None, strict=True, launcher='none'):
    """Evaluate the clean split and every corruption × severity; write JSON, Markdown and PNG.

    Every check (options, config, test data, checkpoint and its keys) runs before the work dir
    is created. Cached cells whose content key matches are reused; others are evaluated again
    and replaced (one note says how many and what changed).

    Args:
        config (str): mmseg config (may inherit ``mmseg::`` configs), or
            ``mmseg::<dir>/<name>.py`` for a config shipped with mmseg.
        checkpoint (str): checkpoint path or http(s) URL.
        families (Sequence[str]): corruption and category names (:func:`select_corruptions`).
        severities (Sequence[int]): severities in 1–5.
        work_dir (str, optional): output folder; default
            ``work_dirs/robustness/<config name>``.
        cfg_options (dict, optional): config overrides (``--cfg-options``).
        strict (bool): refuse a checkpoint whose keys do not match the model.
        launcher (str): ``'none'`` or an mmengine launcher (``'pytorch'`` under torchrun); the
            test data is split across the processes, rank 0 writes the outputs.

    Returns:
        dict: the result written to ``<work_dir>/robustness.json`` (see :func:`make_result`).
    """
    corruptions, severities = check_request(config, checkpoint, families, severities)
    cfg, notes = load_config(config, cfg_options)
    rank, world_size = _init_distributed(launcher, cfg)
    say = print if rank == 0 else (lambda *a, **k: None)
    for note in notes:
        say(note, flush=True)
    model_name = osp.splitext(osp.basename(config))[0]
    work_dir = osp.abspath(work_dir or osp.join('work_dirs', 'robustness', model_name))
    files = dataset_files(build_dataset(cfg.test_dataloader.dataset, config))
    local = local_checkpoint(checkpoint)
    digests = FileDigests(osp.join(work_dir, 'file_digests.json'))
    base_key = dict(version=CACHE_VERSION, checkpoint=digests(local),
                    config=sha256_text(cfg.pretty_text),
                    referenced=referenced_files(cfg.model, digests),
                    files=data_digest(files, digests), strict=strict)

    cache = CellCache(osp.join(work_dir, 'cells'))
    cells, todo, stale = _cached_cells(cache, corruptions, severities, base_key)
    if stale:
        say(f'note: {sum(map(len, stale.values()))} cached cells in {work_dir}/cells no longer '
            'match (' + '; '.join(f'{reason} changed: {names_list(names, 2)}'
                                  for reason, names in stale.items())
            + '): they are evaluated again and replaced', flush=True)

    load_report = build_warnings = None
    if todo:
        model, load_report, build_warnings = build_model_checked(runner_model_cfg(cfg), config,
                                                                 checkpoint, strict)
        if not strict:
            say(f'note: --non-strict: {load_report["missing"]} missing, '
                f'{load_report["unexpected"]} unexpected and {load_report["mismatched"]} '
                'shape-mismatched keys of the checkpoint were not loaded', flush=True)

    # every check passed: from here on the work dir is written
    if rank == 0:
        os.makedirs(osp.join(work_dir, 'cells'), exist_ok=True)
        digests.save()
    say(f'{len(cells) + len(todo)} cells ({len(cells)} cached, {len(todo)} to evaluate) × '
        f'{len(files)} images; mmseg logs in {osp.join(work_dir, "logs")}', flush=True)
    if todo:
        runner = build_test_runner(cfg, model, work_dir, launcher, 'robustness')
        for warning in build_warnings:
            runner.logger.warning(f'{warning.category.__name__}: {warning.message}')
        progress = _Progress(len(todo) * len(files), enabled=rank == 0)
        runner.register_hook(progress.hook(world_size))
        runner.call_hook('before_run')
        for index, (corruption, severity, key) in enumerate(todo, 1):
            name = cell_name(corruption, severity)
            start = time.time()
            metrics = evaluate_cell(runner, cfg, key['corruption'])
            seconds = time.time() - start
            cell = dict(corruption=corruption, category=CATEGORY_OF.get(corruption, CLEAN),
                        severity=severity, **metrics, seconds=round(seconds, 2),
                        checkpoint_load=load_report)
            cells[name] = cache.put(name, key, cell) if rank == 0 else cell
            progress.cell_done(len(files), f'[{index}/{len(todo)}] {name}: mIoU '
                               f'{cell["mIoU"]:.2f} ({seconds:.1f} s)')
        runner.call_hook('after_run')
        progress.close()
    ordered = [cells[cell_name(c, s)] for c, s in cell_list(corruptions, severities)]
    source = dict(config=config if config.startswith('mmseg::') else osp.abspath(config),
                  checkpoint=checkpoint if '://' in checkpoint else osp.abspath(checkpoint),
                  cfg_options=json.loads(json.dumps(cfg_options or {}, default=str)),
                  checkpoint_sha256=base_key['checkpoint'], config_sha256=base_key['config'],
                  files_sha256=base_key['files'], num_images=len(files),
                  checkpoint_load=load_report or ordered[0]['checkpoint_load'],
                  processes=world_size)
    result = make_result(model_name, source, ordered)
    if rank == 0:
        paths = write_outputs(result, work_dir)
        summary = result['summary']
        say(f'clean mIoU {summary["clean_mIoU"]:.2f}, mPC {summary["mPC"]:.2f}, '
            f'rPC {_percent(summary["rPC"])}; wrote {", ".join(paths)}', flush=True)
    return result


def _mean(values):
    return float(np.mean(values)) if values else None


def summarize(cells):
    """Summary figures of a list of cells.

    Args:
        cells (list[dict]): each with ``corruption``, ``severity`` and ``mIoU``; exactly one
            with corruption ``'clean'``.

    Returns:
        dict: ``clean_mIoU``, ``mPC`` (mean mIoU of the corrupted cells), ``rPC``
        (mPC / clean mIoU; ``None`` when clean mIoU is 0), ``category_mPC`` and
        ``corruption_mPC`` (means over their cells).
    """
    clean = [c['mIoU'] for c in cells if c['corruption'] == CLEAN]
    corrupted = [c for c in cells if c['corruption'] != CLEAN]
    if len(clean) != 1 or not corrupted:
        raise ValueError('a result needs exactly one clean cell and at least one corrupted cell')
    mpc = _mean([c['mIoU'] for c in corrupted])
    categories = [k for k in CATEGORY_ORDER if any(c['category'] == k for c in corrupted)]
    return dict(
        clean_mIoU=clean[0], mPC=mpc, rPC=mpc / clean[0] if clean[0] > 0 else None,
        category_mPC={k: _mean([c['mIoU'] for c in corrupted if c['category'] == k])
                      for k in categories},
        corruption_mPC={n: _mean([c['mIoU'] for c in corrupted if c['corruption'] == n])
                        for n in dict.fromkeys(c['corruption'] for c in corrupted)})


def make_result(model, source, cells):
    """The benchmark result: model name, source, cells (without cache keys), summary."""
    cells = [{k: v for k, v in strip_keys(c).items() if k != 'checkpoint_load'} for c in cells]
    return dict(format=RESULT_FORMAT, model=model, **source,
                corruptions=list(dict.fromkeys(c['corruption'] for c in cells
                                               if c['corruption'] != CLEAN)),
                severities=sorted({c['severity'] for c in cells if c['corruption'] != CLEAN}),
                classes=list(cells[0]['IoU']), cells=cells, summary=summarize(cells))


def load_result(path):
    """Read a ``robustness.json`` written by :func:`run_benchmark`, with clear errors."""
    return read_result(path, RESULT_FORMAT, 'robustness.json', 'tools/benchmark_robustness.py')


def _percent(ratio):
    return 'n/a' if ratio is None else f'{100 * ratio:.1f} %'


def _fmt(value):
    return '–' if value is None else f'{value:.2f}'


def _cell_miou(result, corruption, severity):
    for c in result['cells']:
        if c['corruption'] == corruption and (corruption == CLEAN or c['severity'] == severity):
            return c['mIoU']
    return None


def _category_curve(result, category, severities):
    """Mean mIoU of a category's corruptions at each severity (``None`` where none ran)."""
    names = [n for n in result['corruptions'] if CATEGORY_OF.get(n) == category]
    values = [[_cell_miou(result, n, s) for n in names] for s in severities]
    return [_mean([v for v in vs if v is not None]) for vs in values]


def format_table(result):
    """Markdown report of one result: mIoU per corruption × severity grouped by category,
    summary, per-class IoU."""
    summary, severities = result['summary'], result['severities']
    lines = [f'# Robustness of {result["model"]}', '',
             f'clean mIoU **{summary["clean_mIoU"]:.2f}** · mPC **{summary["mPC"]:.2f}** · '
             f'rPC **{_percent(summary["rPC"])}**', '',
             '| category | corruption | ' + ' | '.join(f's{s}' for s in severities)
             + ' | mean |', '|---' * (len(severities) + 3) + '|']
    for category, mpc in summary['category_mPC'].items():
        for name in [n for n in result['corruptions'] if CATEGORY_OF.get(n) == category]:
            lines.append(f'| {category} | {name} | '
                         + ' | '.join(_fmt(_cell_miou(result, name, s)) for s in severities)
                         + f' | {summary["corruption_mPC"][name]:.2f} |')
        lines.append(f'| **{category}** | **mean** | '
                     + ' | '.join(_fmt(v) for v in _category_curve(result, category, severities))
                     + f' | **{mpc:.2f}** |')
    lines += ['', 'mIoU in %; clean mIoU '
              f'{summary["clean_mIoU"]:.2f}; mPC = mean over every corruption × severity above; '
              'rPC = mPC / clean mIoU.', '', '## Per-class IoU', '',
              '| class | clean | corrupted mean | drop |', '|---|---|---|---|']
    clean = next(c for c in result['cells'] if c['corruption'] == CLEAN)
    corrupted = [c for c in result['cells'] if c['corruption'] != CLEAN]
    for name in result['classes']:
        mean = _mean([c['IoU'][name] for c in corrupted if c['IoU'].get(name) is not None])
        drop = None if mean is None or clean['IoU'][name] is None else clean['IoU'][name] - mean
        lines.append(f'| {name} | {_fmt(clean["IoU"][name])} | {_fmt(mean)} | {_fmt(drop)} |')
    load = result.get('checkpoint_load') or {}
    lines += ['', f'config `{result["config"]}`, checkpoint `{result["checkpoint"]}` (SHA-256 '
              f'{result.get("checkpoint_sha256", "?")[:12]}…, '
              f'{"strict" if load.get("strict", True) else "non-strict"} loading), '
              f'{result.get("num_images", "?")} test images']
    return '\n'.join(lines) + '\n'


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _panels(plt, count, title):
    cols = 2 if count == 4 else min(3, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows + 0.8), squeeze=False,
                             layout='constrained')
    fig.get_layout_engine().set(w_pad=0.08, h_pad=0.08)
    fig.suptitle('\n'.join(textwrap.wrap(title, 40 * cols)))
    for ax in list(axes.flat)[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:count]


def _style(ax, title, severities):
    ax.set_title(title)
    ax.set_xticks([0] + severities, ['clean'] + [str(s) for s in severities])
    ax.set_xlabel('severity')
    ax.set_ylabel('mIoU (%)')
    top = max([max(line.get_ydata(), default=0) for line in ax.lines], default=0)
    ax.set_ylim(0, max(1.0, 1.1 * top))
    ax.grid(alpha=0.3)


def result_figure(result):
    """Figure of one result: a panel per category, mIoU against severity, one line per
    corruption (x = clean: the clean mIoU); legends below their panels."""
    plt = _pyplot()
    summary, severities = result['summary'], result['severities']
    categories = list(summary['category_mPC'])
    fig, axes = _panels(plt, len(categories), f'{result["model"]}: clean '
                        f'{summary["clean_mIoU"]:.2f}, mPC {summary["mPC"]:.2f}, '
                        f'rPC {_percent(summary["rPC"])}')
    for ax, category in zip(axes, categories):
        for name in [n for n in result['corruptions'] if CATEGORY_OF.get(n) == category]:
            xs = [s for s in severities if _cell_miou(result, name, s) is not None]
            ax.plot([0] + xs, [summary['clean_mIoU']] + [_cell_miou(result, name, s) for s in xs],
                    marker='o', markersize=3, label=name)
        _style(ax, f'{category} (mPC {summary["category_mPC"][category]:.2f})', severities)
        ax.legend(fontsize='x-small', loc='upper center', bbox_to_anchor=(0.5, -0.24), ncols=2)
    return fig


def compare_figure(results, names):
    """Figure of several results: a panel per category, mean mIoU of the category against
    severity, one line per model; one legend under the panels."""
    plt = _pyplot()
    categories = [k for k in CATEGORY_ORDER if any(k in r['summary']['category_mPC']
                                                   for r in results)]
    severities = sorted({s for r in results for s in r['severities']})
    fig, axes = _panels(plt, len(categories), 'mIoU against corruption severity, mean per '
                        'category (x = clean: clean mIoU)')
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, category in zip(axes, categories):
        for i, (result, name) in enumerate(zip(results, names)):
            curve = _category_curve(result, category, severities)
            points = [(s, v) for s, v in zip(severities, curve) if v is not None]
            if points:
                ax.plot([0] + [p[0] for p in points],
                        [result['summary']['clean_mIoU']] + [p[1] for p in points],
                        marker='o', markersize=3, color=colors[i % len(colors)], label=name)
        _style(ax, category, severities)
    handles = [plt.Line2D([], [], color=colors[i % len(colors)], marker='o',
                          label='\n'.join(textwrap.wrap(name, 32)))
               for i, name in enumerate(names)]
    fig.legend(handles=handles, loc='outside lower center',
               ncols=min(len(names), min(3, len(categories))))
    return fig


def figure_overflow(fig):
    """The visible artists of a figure that extend past its edges (after a draw): texts,
    legends and axes. An empty list means nothing is clipped."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    artists = list(fig.texts) + list(fig.legends)
    for ax in fig.axes:
        if ax.get_visible():
            artists += [ax, ax.title, ax.xaxis.label, ax.yaxis.label]
            artists += ax.get_xticklabels() + ax.get_yticklabels()
            artists += [ax.get_legend()] if ax.get_legend() else []
    outside = []
    for artist in artists:
        if not artist.get_visible() or (hasattr(artist, 'get_text') and not artist.get_text()):
            continue
        extent = artist.get_window_extent(renderer)
        if (extent.x0 < box.x0 - 1 or extent.y0 < box.y0 - 1 or extent.x1 > box.x1 + 1
                or extent.y1 > box.y1 + 1):  # 1 pixel of rounding
            outside.append(artist)
    return outside


def _save(fig, path):
    plt = _pyplot()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result, work_dir):
    """Write ``robustness.json``, ``robustness.md`` and ``robustness.png``; return their paths."""
    paths = [osp.join(work_dir, f'robustness.{ext}') for ext in ('json', 'md', 'png')]
    dump_json(result, paths[0])
    with open(paths[1], 'w', encoding='utf-8') as f:
        f.write(format_table(result))
    _save(result_figure(result), paths[2])
    return paths


def _model_names(results, names):
    if names is None:
        names = [r['model'] for r in results]
        if len(set(names)) < len(names):
            names = [f'{n} ({i})' for i, n in enumerate(names, 1)]
    elif len(names) != len(results):
        raise BenchmarkError(f'{len(names)} names given for {len(results)} result files: pass '
                             'one name per file (or none)')
    return list(names)


def format_compare_table(results, names):
    """Markdown leaderboard, best mPC first: clean mIoU, mPC, rPC and mPC per category."""
    categories = [k for k in CATEGORY_ORDER if any(k in r['summary']['category_mPC']
                                                   for r in results)]
    order = sorted(range(len(results)), key=lambda i: -results[i]['summary']['mPC'])
    lines = ['| model | clean mIoU | mPC | rPC | ' + ' | '.join(categories) + ' |',
             '|---' * (len(categories) + 4) + '|']
    for i in order:
        summary = results[i]['summary']
        lines.append(f'| {names[i]} | {summary["clean_mIoU"]:.2f} | **{summary["mPC"]:.2f}** | '
                     f'{_percent(summary["rPC"])} | ' + ' | '.join(
                         _fmt(summary['category_mPC'].get(k)) for k in categories) + ' |')
    counts = sorted({(len(r['corruptions']), tuple(r['severities'])) for r in results})
    lines += ['', 'mIoU in %; mPC = mean mIoU over every corruption × severity; rPC = mPC / '
              'clean mIoU; a category = mean over its corruptions × severities ('
              + '; '.join(f'{n} corruptions × severities {list(s)}' for n, s in counts) + ').']
    cell_sets = {frozenset((c['corruption'], c['severity']) for c in r['cells'])
                 for r in results}
    if len(cell_sets) > 1:
        lines += ['', '**Warning: the models were evaluated on different corruptions / '
                  'severities; their mPC and rPC are not comparable.**']
    return '\n'.join(lines) + '\n'


def compare(paths, work_dir, names=None):
    """Leaderboard of several ``robustness.json`` files: Markdown table and PNG.

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
    _save(compare_figure(results, names), png)
    return md, png
