"""Evaluation cells: the content-keyed cache, strict model loading and mmseg's test loop.

A *cell* is one evaluation of one model on one test set under one condition (a corruption of
the robustness benchmark, a DT / R2S / FT setting of the LQ protocol). Both tools
(:mod:`.robustness`, :mod:`.lq_protocol`) cache each finished cell as a JSON file, valid while
its **content key** matches: a dict of digests of everything that computes the cell, hashed
with :func:`content_key`. The digests come from here:

* checkpoints: SHA-256 of the file's bytes; an http(s) URL is downloaded once into a folder of
  its own (:func:`local_checkpoint`, the folder mmengine's http loader uses here too), so two URLs
  ending in the same file name never share a file;
* configs: SHA-256 of the resolved config text; files a model config names (an SD folder, an
  SCR LoRA, a restorer checkpoint, a tag cache) by their contents (:func:`referenced_files`);
* test data: the name and contents of every file the test dataset loads (:func:`data_digest`),
  so an image or label edited in place under the same name is evaluated again;
* code: SHA-256 of the source files that compute the cell (:func:`source_digest`).

File contents are hashed through :class:`FileDigests`, which remembers each file's SHA-256 with
its size, mtime, ctime and inode: any change of these (an edit, a copy over it, ``touch``)
hashes the file again; an unchanged file is not read twice.
"""
import copy
import functools
import hashlib
import itertools
import json
import logging
import os
import os.path as osp
import platform
import warnings

from ..compat.checkpoints import download_checkpoint, load_local_checkpoint
from ..errors import UserError
from ..sam.prior_io import file_sha256

_runs = itertools.count()


class BenchmarkError(UserError):
    """A user error (bad option, config, data or checkpoint) of an evaluation, reported as one
    line."""


def sha256_text(text):
    """SHA-256 hex digest of a string (UTF-8)."""
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def content_key(parts):
    """SHA-256 of a cell's key parts (a JSON-able dict)."""
    return sha256_text(json.dumps(parts, sort_keys=True))


def dump_json(obj, path):
    """Write JSON atomically (an interrupted write never leaves a truncated file)."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def one_line(error):
    """``'<Type>: <message>'`` of an exception on one line (whitespace runs collapsed)."""
    text = ' '.join(str(error).split()) or repr(error)
    return f'{type(error).__name__}: {text[:400]}{"…" if len(text) > 400 else ""}'


class FileDigests:
    """SHA-256 of files, remembered across runs in a JSON file by each file's status.

    A file is hashed again when its size, mtime, ctime or inode differ from the remembered
    ones (an edit in place changes mtime and ctime even when a tool restores the mtime).

    Args:
        memo (str, optional): the JSON file holding the remembered digests; ``None`` keeps
            them in memory only.
    """

    def __init__(self, memo=None):
        self.memo, self.changed = memo, False
        self.entries = {}
        if memo and osp.isfile(memo):
            try:
                with open(memo, encoding='utf-8') as f:
                    self.entries = json.load(f)
            except (OSError, ValueError):  # damaged: hash everything again
                self.entries = {}

    def __call__(self, path):
        """SHA-256 hex digest of the file at ``path``."""
        path = osp.abspath(path)
        stat = os.stat(path)
        status = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        entry = self.entries.get(path)
        if isinstance(entry, list) and entry[:4] == status:
            return entry[4]
        digest = file_sha256(path)
        self.entries[path] = status + [digest]
        self.changed = True
        return digest

    def tree(self, folder):
        """SHA-256 of a folder: the relative path and contents of every file under it."""
        digest = hashlib.sha256()
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            for name in sorted(names):
                path = osp.join(root, name)
                digest.update(f'{osp.relpath(path, folder)}\0{self(path)}\0'.encode())
        return digest.hexdigest()

    def save(self):
        """Write the remembered digests (if any changed) to the memo file."""
        if self.memo and self.changed:
            os.makedirs(osp.dirname(self.memo) or '.', exist_ok=True)
            dump_json(self.entries, self.memo)
            self.changed = False


def referenced_files(node, digests):
    """Digests of the local files and folders a (model) config names, by config value.

    Every string value with a path separator or a file extension that names an existing file
    or folder counts (``pretrained_model_path``, ``scr_lora``, ``restorer_checkpoint``, tag
    caches, ...): retraining one to the same path changes the key.

    Returns:
        dict: path → SHA-256 of the file (:class:`FileDigests`) or folder (its ``tree``).
    """
    found = {}

    def visit(value):
        if isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, str) and value not in found and (
                os.sep in value or osp.splitext(value)[1]) and '://' not in value:
            if osp.isfile(value):
                found[value] = digests(value)
            elif osp.isdir(value):
                found[value] = digests.tree(value)

    visit(node)
    return found


def data_digest(files, digests):
    """SHA-256 of a test set's contents: per sample, each file's key, name and SHA-256.

    Args:
        files (list[list[tuple[str, str]]]): per sample, ``(key, path)`` pairs
            (:func:`dataset_files`).
        digests (FileDigests): the file hasher.
    """
    return sha256_text(json.dumps([[(k, osp.basename(p), digests(p)) for k, p in sample]
                                   for sample in files]))


@functools.lru_cache(maxsize=None)
def source_digest(folder, prefix=''):
    """SHA-256 of the ``.py`` files under ``folder`` whose relative path starts with ``prefix``
    (names and bytes), so a change of that code recomputes the cells it made."""
    digest = hashlib.sha256()
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        for name in sorted(names):
            rel = osp.relpath(osp.join(root, name), folder)
            if name.endswith('.py') and rel.startswith(prefix):
                with open(osp.join(root, name), 'rb') as f:
                    digest.update(rel.encode() + b'\0' + f.read())
    return digest.hexdigest()


def package_code_digest():
    """SHA-256 of the plug-in's sources and the versions of torch, mmcv, mmengine and mmseg."""
    import mmcv
    import mmengine
    import mmseg
    import torch
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    versions = [m.__version__ for m in (torch, mmcv, mmengine, mmseg)]
    return sha256_text(source_digest(package) + json.dumps(versions))


def device_name():
    """The device mmengine runs models on, in words (GPU name; CPU architecture and threads)."""
    import torch
    from mmengine.device import get_device
    device = get_device()
    if device == 'cuda':
        return f'cuda ({torch.cuda.get_device_name()})'
    return f'{device} ({platform.machine()}, {torch.get_num_threads()} threads)'


class CellCache:
    """Finished cells as JSON files ``<folder>/<name>.json``, each valid while its key matches.

    Args:
        folder (str): the cache folder (created on the first :meth:`put`).
    """

    def __init__(self, folder):
        self.folder = folder

    def path(self, name):
        return osp.join(self.folder, f'{name}.json')

    def get(self, name, key):
        """The cached cell and why it is not used: ``(cell, None)``, ``(None, reason)`` or
        ``(None, None)`` when absent; ``reason`` names the key parts that changed."""
        path = self.path(name)
        if not osp.isfile(path):
            return None, None
        try:
            with open(path, encoding='utf-8') as f:
                cell = json.load(f)
        except (OSError, ValueError):
            return None, 'unreadable'
        if not isinstance(cell, dict) or not isinstance(cell.get('key_parts'), dict):
            return None, 'older format'
        if cell.get('key') == content_key(key):
            return cell, None
        changed = [k for k in key if cell['key_parts'].get(k) != key[k]]
        return None, '/'.join(changed) or 'key'

    def put(self, name, key, cell):
        """Store ``cell`` (a dict) under ``name`` with its key; return the stored dict."""
        cell = dict(cell, key=content_key(key), key_parts=key)
        os.makedirs(osp.dirname(self.path(name)), exist_ok=True)
        dump_json(cell, self.path(name))
        return cell


def read_result(path, fmt, kind, tool):
    """Read a result JSON of format ``fmt`` (a ``kind`` file written by ``tool``); one-line
    errors for a missing, damaged or foreign file."""
    hint = f'pass a {kind} written by {tool}'
    if not osp.isfile(path):
        raise BenchmarkError(f'result file {path} does not exist: {hint}')
    try:
        with open(path, encoding='utf-8') as f:
            result = json.load(f)
    except ValueError as e:
        raise BenchmarkError(f'{path} is not valid JSON ({e}): {hint}') from None
    if not isinstance(result, dict) or result.get('format') != fmt:
        raise BenchmarkError(f'{path} is not a result of {tool} ({fmt}): {hint} (results of an '
                             'older format: run it again)')
    return result


def strip_keys(cell):
    """A cached cell without its cache key."""
    return {k: v for k, v in cell.items() if k not in ('key', 'key_parts')}


def resolve_config(config):
    """Path of a config file; ``mmseg::<dir>/<name>.py`` names a config shipped with mmseg."""
    if config.startswith('mmseg::'):
        import mmseg
        return osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', config[len('mmseg::'):])
    return config


def load_config_file(config, cfg_options=None, what='config'):
    """Load a config (``mmseg::`` bases allowed) and apply ``cfg_options``; one-line errors."""
    from mmengine.config import Config
    if not osp.isfile(resolve_config(config)):
        raise BenchmarkError(
            f'{what} file {resolve_config(config)} does not exist: pass the path of an mmseg '
            'config (e.g. configs/baseline/fpn_r18_demo_cityscapes.py or '
            'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py)')
    try:
        cfg = Config.fromfile(resolve_config(config))
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    except Exception as e:  # a config is Python: any error is the config's
        raise BenchmarkError(f'{what} {config} cannot be loaded ({type(e).__name__}: '
                             f'{str(e).strip().splitlines()[-1] if str(e).strip() else e!r})'
                             ) from None
    cfg.setdefault('default_scope', 'mmseg')
    return cfg


def check_checkpoint_arg(checkpoint, what='checkpoint'):
    """Refuse a checkpoint argument that is neither an existing file nor an http(s) URL."""
    url = checkpoint.startswith(('http://', 'https://'))
    if '://' in checkpoint and not url:
        raise BenchmarkError(f'{what} {checkpoint}: only local files and http(s) URLs are '
                             'supported; download it first')
    if not url and not osp.isfile(checkpoint):
        raise BenchmarkError(f'{what} {checkpoint} does not exist: pass a .pth file '
                             'written by tools/train.py or downloaded from the model zoo')


def use_per_class_metric(evaluator_cfg):
    """The first ``IoUMetric`` of a test evaluator as ``PerClassIoUMetric`` (same arguments).

    Other metrics of a list (e.g. ``CityscapesMetric``, which writes files) are dropped.
    """
    metrics = evaluator_cfg if isinstance(evaluator_cfg, list) else [evaluator_cfg]
    for metric in metrics:
        if type_name(metric) in ('IoUMetric', 'PerClassIoUMetric'):
            return dict(metric, type='PerClassIoUMetric')
    raise BenchmarkError(f'test_evaluator {evaluator_cfg} has no IoUMetric: the benchmark '
                         "needs mmseg's IoUMetric (set test_evaluator = dict(type='IoUMetric'))")


def type_name(cfg):
    """The registry name of a config dict's ``type`` (class names and scoped names too)."""
    kind = cfg.get('type') if isinstance(cfg, dict) else None
    kind = getattr(kind, '__name__', kind)
    return kind.split('.')[-1] if isinstance(kind, str) else None


def build_dataset(dataset_cfg, what):
    """Build a dataset config (a copy) under scope mmseg; one-line error naming ``what``."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    try:
        dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
    except Exception as e:  # missing data root, bad annotation file, unknown type...
        raise BenchmarkError(
            f'the test dataset of {what} cannot be built ({one_line(e)}); check '
            'test_dataloader.dataset (data_root, data_prefix) or override it, e.g. '
            '--cfg-options test_dataloader.dataset.data_root=DIR') from None
    if len(dataset) == 0:
        raise BenchmarkError(f'the test dataset of {what} is empty: check '
                             'test_dataloader.dataset (data_root, data_prefix)')
    return dataset


def dataset_files(dataset):
    """The files a dataset loads: one sorted list of ``(key, path)`` (``*_path``) per sample."""
    return [sorted((k, v) for k, v in dataset.get_data_info(i).items()
                   if k.endswith('_path') and isinstance(v, str))
            for i in range(len(dataset))]


def local_checkpoint(checkpoint):
    """The local file of a checkpoint; an http(s) URL is downloaded once, into a folder of its
    own (:func:`mmseg_rass.compat.checkpoints.download_checkpoint`: ``<torch hub dir>/checkpoints/
    mmseg_rass_urls/<SHA-256 of the URL, 16 hex>/<name>``, where mmengine's http loader puts it
    too), so two URLs ending in the same file name never share a download (cells are keyed by
    the SHA-256 of the downloaded bytes)."""
    if not checkpoint.startswith(('http://', 'https://')):
        return checkpoint
    return download_checkpoint(checkpoint)


def names_list(keys, limit=3):
    """``'a, b, c, … (n more)'``."""
    keys = list(keys)
    more = f', … ({len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def load_checkpoint_checked(model, checkpoint, strict=True, non_strict_option=True):
    """Load a checkpoint into ``model``; strictly unless ``strict=False``.

    Reads with the plug-in's safe loading (``weights_only=True`` unless the user opted in with
    ``--trust-checkpoint``), whose one-line errors name the file or URL: a missing
    (``CheckpointNotFoundError``), damaged (``CheckpointReadError``) or refused
    (``UntrustedCheckpointError``) checkpoint. Keys are compared with ``model.state_dict()``.

    Args:
        model (nn.Module): the (unwrapped) model.
        checkpoint (str): local checkpoint file, or http(s) URL (its download,
            :func:`local_checkpoint`).
        strict (bool): raise :class:`BenchmarkError` listing missing, unexpected and
            shape-mismatched keys; with ``False`` the matching weights are loaded.
        non_strict_option (bool): the error names the tool's ``--non-strict`` option.

    Returns:
        dict: ``strict`` and the counts of ``missing``, ``unexpected`` and ``mismatched`` keys.
    """
    local = local_checkpoint(checkpoint)
    loaded = load_local_checkpoint(local, map_location='cpu',
                                   url=checkpoint if local != checkpoint else None)
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise BenchmarkError(f'checkpoint {checkpoint} holds no state dict (found '
                             f'{type(loaded).__name__})')
    metadata = getattr(state, '_metadata', None)
    if state and all(k.startswith('module.') for k in state):  # saved from a wrapped model
        state = {k[len('module.'):]: v for k, v in state.items()}
        if metadata is not None:
            metadata = {k[len('module.'):] if k.startswith('module.') else k: v
                        for k, v in metadata.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in state if k in expected and hasattr(state[k], 'shape')
                  and tuple(state[k].shape) != tuple(expected[k].shape)]
    report = dict(strict=strict, missing=len(missing), unexpected=len(unexpected),
                  mismatched=len(mismatched))
    if strict and (missing or unexpected or mismatched):
        parts = [f'{len(keys)} {kind} key{"s" * (len(keys) != 1)} ({names_list(keys)})'
                 for kind, keys in (('missing', missing), ('unexpected', unexpected))
                 if keys]
        if mismatched:
            parts.append(f'{len(mismatched)} with another shape ({names_list(mismatched)})')
        raise BenchmarkError(
            f'checkpoint {checkpoint} does not match the model of the config: '
            f'{"; ".join(parts)}. Pass the checkpoint trained with this config'
            + (', or --non-strict to load only the matching weights (recorded in the result)'
               if non_strict_option else ''))
    kept = type(state)((k, v) for k, v in state.items() if k not in mismatched)
    if metadata is not None:
        kept._metadata = metadata
    model.load_state_dict(kept, strict=False)
    return report


def runner_model_cfg(cfg):
    """A config's ``model`` as mmengine's Runner builds it: a model dict without
    ``data_preprocessor`` takes the config's top-level one (``Runner(data_preprocessor=...)``)."""
    model = copy.deepcopy(cfg.model)
    if isinstance(model, dict) and cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    return model


def build_model_checked(model_cfg, what, checkpoint=None, strict=True):
    """Build a model config (a copy) and load ``checkpoint`` (:func:`load_checkpoint_checked`).

    Returns:
        tuple: the model, the load report (``None`` without a checkpoint) and the warnings raised
        meanwhile (for a log file).
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            model = MODELS.build(copy.deepcopy(model_cfg))
        except Exception as e:
            raise BenchmarkError(f'the model of {what} cannot be built ({one_line(e)})') from None
        report = None if checkpoint is None else load_checkpoint_checked(model, checkpoint,
                                                                         strict)
    return model, report, caught


def build_test_runner(cfg, model, work_dir, launcher='none', name='cells'):
    """An mmengine Runner around an already loaded ``model``; its console log shows errors only
    (everything goes to the log file under ``<work_dir>/logs``)."""
    from mmengine.runner import Runner

    class CellRunner(Runner):

        def build_model(self, model_cfg):
            return model

        def build_logger(self, log_level='INFO', log_file=None, **kwargs):
            logger = super().build_logger(log_level, log_file, **kwargs)
            for handler in logger.handlers:
                if type(handler) is logging.StreamHandler:
                    handler.setLevel(logging.ERROR)
            return logger

    cfg = copy.deepcopy(cfg)
    cfg.load_from, cfg.resume, cfg.launcher = None, False, launcher
    cfg.work_dir = osp.join(work_dir, 'logs')
    cfg.experiment_name = f'{name}{next(_runs)}'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        runner = CellRunner.from_cfg(cfg)
    for warning in caught:
        runner.logger.warning(f'{warning.category.__name__}: {warning.message}')
    return runner


def run_test_loop(runner, dataloader_cfg, evaluator_cfg, test_cfg):
    """Run mmseg's test loop of ``runner`` on a test dataloader with a ``PerClassIoUMetric``.

    Returns:
        dict: ``aAcc``, ``mIoU``, ``mAcc`` (percent) and ``IoU`` / ``Acc`` (dict class → percent
        or ``None`` for a class absent from prediction and ground truth).
    """
    runner._test_dataloader = copy.deepcopy(dataloader_cfg)
    runner._test_evaluator = copy.deepcopy(evaluator_cfg)
    runner._test_loop = runner.build_test_loop(copy.deepcopy(test_cfg))
    metrics = runner.test_loop.run()
    metrics = {key.split('/')[-1]: value for key, value in metrics.items()}
    return dict(aAcc=float(metrics['aAcc']), mIoU=float(metrics['mIoU']),
                mAcc=float(metrics['mAcc']), IoU=metrics['IoU_per_class'],
                Acc=metrics['Acc_per_class'])
