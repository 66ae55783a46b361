"""Every workaround mmseg_rass needs to run mmsegmentation 1.2.2 on a current stack, and every
change the plug-in makes to the behaviour of mmengine, mmseg and torch.

Applied by ``import mmseg_rass`` (and by ``tools/train.py`` / ``tools/test.py`` before anything
else); :func:`apply` runs the patches that must precede mmseg's import (1, 3) first, then
imports what the others patch. Each patch is idempotent, checks for the condition it fixes and
does nothing when that condition is absent; ``tests/test_compat.py`` shows the failure each one
prevents.

1. ``mmcv._ext`` stand-in. ``mmcv-lite`` ships ``mmcv/ops/*.py`` without the compiled
   extension, and mmseg 1.2.2 imports ``mmcv.ops.point_sample`` (pure PyTorch) unguarded, so
   ``import mmseg.models`` fails. The stand-in module lets ``mmcv.ops`` import; calling any
   compiled op raises :class:`MissingCompiledOpError` naming the op and how to get it.
2. Safe checkpoint loading. A checkpoint is a pickle: loading it fully can run any code in it.
   mmengine 0.10.7 calls ``torch.load`` without ``weights_only``, and its checkpoints hold a
   message hub (``HistoryBuffer``), numpy arrays and scalars, which ``weights_only=True`` (torch
   >= 2.6's default) refuses, so ``--resume``, ``load_from`` and ``tools/test.py`` fail on the
   user's own checkpoints. Those types are registered as safe globals
   (:func:`checkpoint_safe_globals`), and every mmengine checkpoint loader (local files, http,
   open-mmlab, s3, ...) loads with ``weights_only=True``. A file that needs more fails with
   :class:`UntrustedCheckpointError` naming it and the opt-in: ``--trust-checkpoint`` on the
   tools, or ``MMSEG_RASS_TRUST_CHECKPOINTS=1``, which loads with ``weights_only=False``.
3. ``pkg_resources``. mmengine resolves ``mmseg::`` base configs through ``pkg_resources``,
   which setuptools >= 82 no longer ships. When it is missing, a minimal stand-in backed by
   :mod:`importlib.metadata` provides the three names mmengine uses. With setuptools 81 the real
   module warns that it is deprecated at every config load; that warning is silenced.
4. Distributed training on CPU (``--launcher pytorch``, ``tools/dist_train.sh`` without a GPU).
   mmengine 0.10.7 calls ``torch.cuda.set_device`` and asks for the ``nccl`` backend
   (mmseg's ``default_runtime``), and the runner passes ``device_ids=[LOCAL_RANK]`` to DDP; all
   three fail on CPU. With no accelerator the process group uses ``gloo`` (``nccl`` needs CUDA;
   any other configured backend is kept), no device is selected, and
   ``MMDistributedDataParallel`` drops ``device_ids`` for a CPU module. GPUs are untouched.
   torch has no CPU kernels for ``SyncBatchNorm``, which most mmseg configs use: on CPU
   processes it runs :class:`CPUSyncBatchNormFunction` instead (statistics all-reduced over the
   process group, the same result as SyncBN on GPUs: never a silent switch to per-process BN).
5. Exact resume. mmengine 0.10.7 re-seeds on ``--resume`` instead of restoring the random
   generators, so a resumed run with dropout or random augmentation drifts away from an
   uninterrupted one. Every runner gets :class:`mmseg_rass.hooks.RNGStateHook` (unless its
   config lists one already), which saves the generators' states in checkpoints and restores
   them on resume.
6. Data checked when a dataset is built. mmengine fails on an empty split with numpy's
   "need at least one array to concatenate", and a missing, truncated or mismatched file
   surfaces mid-training (a validation label only after training) or without its name
   (mmseg's ``LoadAnnotations``: "image file is truncated"). Every dataset is checked by
   :func:`mmseg_rass.datasets.data_check.check_dataset` right after it is built (mode from
   ``MMSEG_RASS_DATA_CHECK``: ``fast``, ``full`` or ``off``), an empty one raises an error
   saying where it looked, and ``LoadAnnotations`` names the label it cannot read.
"""
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import os.path as osp
import pickle
import re
import sys
import types
import warnings

import torch
import torch.distributed as dist

INSTALL_OPS_HINT = ('it needs mmcv with compiled ops: run `MMCV_FULL=1 bash tools/setup_env.sh` '
                    '(builds mmcv 2.1.0 with ops against the installed torch, see README)')


class MissingCompiledOpError(RuntimeError):
    """A compiled mmcv op was called, but only mmcv-lite (no ``mmcv._ext``) is installed."""


class _MissingExtModule(types.ModuleType):
    """Stands in for ``mmcv._ext``: every attribute is a function that raises a clear error."""

    is_mmseg_rass_stand_in = True

    def __init__(self, import_error):
        super().__init__('mmcv._ext')
        self.import_error = import_error

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        reason = self.import_error

        def missing_op(*args, **kwargs):
            raise MissingCompiledOpError(f'mmcv op `{name}` is not available ({reason}): '
                                         f'{INSTALL_OPS_HINT}.')

        missing_op.__name__ = name
        return missing_op


def _patch_mmcv_ext():
    if 'mmcv._ext' in sys.modules:
        return
    try:
        importlib.import_module('mmcv._ext')
    except ImportError as e:  # absent (mmcv-lite), or built against another torch
        stand_in = _MissingExtModule(f'import mmcv._ext failed: {e}')
        # A spec without a loader: importlib/pkgutil look-ups (mmengine's
        # ``mmcv_full_available``) then report that no compiled extension is installed.
        stand_in.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
        sys.modules['mmcv._ext'] = stand_in


def has_compiled_ops():
    """Whether the installed mmcv has its compiled ops (``mmcv._ext``)."""
    _patch_mmcv_ext()
    return not getattr(sys.modules['mmcv._ext'], 'is_mmseg_rass_stand_in', False)


def _patched(function):
    """Mark ``function`` as a compat replacement (so patching twice is a no-op)."""
    function.is_mmseg_rass_patch = True
    return function


TRUST_CHECKPOINTS_ENV = 'MMSEG_RASS_TRUST_CHECKPOINTS'
TRUST_CHECKPOINT_FLAG = '--trust-checkpoint'


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds Python objects that safe (``weights_only=True``) loading refuses."""


def trust_checkpoints():
    """Whether the user opted in to full unpickling (``MMSEG_RASS_TRUST_CHECKPOINTS=1``)."""
    return os.environ.get(TRUST_CHECKPOINTS_ENV, '').strip().lower() in ('1', 'true', 'yes')


def _history_buffer_getattr(obj, name):
    """``getattr`` as mmengine checkpoints use it: a public method of ``HistoryBuffer`` only.

    A message hub's ``HistoryBuffer`` pickles its statistics methods (``min``, ``max``, ...) as
    ``getattr(HistoryBuffer, 'min')``; any other use of ``getattr`` is refused.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and callable(getattr(obj, name, None)):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def checkpoint_safe_globals():
    """What mmengine/mmseg checkpoints hold besides tensors, for ``weights_only=True`` loading.

    mmengine's message hub (``HistoryBuffer`` with numpy arrays, its statistics methods through
    :func:`_history_buffer_getattr`), numpy scalars, arrays and dtypes of numbers and strings
    (under numpy 1.x and 2.x module names). No object arrays, no callables that run code.

    Returns:
        list: Items for ``torch.serialization.add_safe_globals``.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    items = [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'), np.ndarray, np.dtype]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        items += [(multiarray._reconstruct, f'{module}._reconstruct'),
                  (multiarray.scalar, f'{module}.scalar')]
    kinds = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
             np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128,
             np.str_, np.bytes_]
    items += [type(np.dtype(kind)) for kind in kinds]
    return items


def _refused(filename, error):
    """The error for a checkpoint that ``weights_only=True`` refuses: the file and the opt-in."""
    message = str(error)
    found = re.search(r'GLOBAL (\S+) was not an allowed global', message)
    found = found or re.search(r'unsupported GLOBAL (\S+)', message)
    what = (f'it refers to `{found.group(1)}`' if found else
            message.split('WeightsUnpickler error:')[-1].strip().splitlines()[0])
    return UntrustedCheckpointError(
        f'checkpoint {filename} holds Python objects that safe loading (torch.load with '
        f'weights_only=True) refuses: {what}. Loading it fully can run any code it contains. '
        f'Only if you trust the file (you made it, or it comes from a source you trust), '
        f'pass {TRUST_CHECKPOINT_FLAG} to the tool (tools/train.py, test.py, '
        f'benchmark_robustness.py, export_scr_lora.py, convert_*.py), or set '
        f'{TRUST_CHECKPOINTS_ENV}=1 (any tool or script).')


def load_local_checkpoint(filename, map_location=None):
    """mmengine's loader for local files: ``weights_only=True`` unless the user trusts them.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As in :func:`torch.load`.

    Raises:
        FileNotFoundError: The file does not exist.
        UntrustedCheckpointError: The file needs full unpickling and the user did not opt in.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found: pass the path of a .pth file '
                                'written by tools/train.py (or a model-zoo checkpoint)')
    trusted = trust_checkpoints()
    try:
        return torch.load(filename, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as e:
        if trusted:
            raise
        raise _refused(filename, e) from None
    except (EOFError, RuntimeError) as e:  # truncated or not a torch file
        raise RuntimeError(f'cannot read checkpoint {filename} ({e}): the file is damaged or '
                           'not a torch checkpoint') from e


def _safe_remote_loader(loader):
    """Wrap one of mmengine's remote loaders (http, open-mmlab, s3, ...) like the local one.

    They call ``torch.load`` without ``weights_only``; torch's own switches make that call
    ``weights_only=True`` (or ``False`` when the user trusts checkpoints) during the load.
    """

    @_patched
    @functools.wraps(loader)
    def load(filename, *args, **kwargs):
        trusted = trust_checkpoints()
        switch = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' if trusted else 'TORCH_FORCE_WEIGHTS_ONLY_LOAD'
        saved = {k: os.environ.pop(k, None) for k in ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD',
                                                      'TORCH_FORCE_WEIGHTS_ONLY_LOAD')}
        os.environ[switch] = '1'
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', message='Environment variable TORCH_FORCE_NO')
                return loader(filename, *args, **kwargs)
        except pickle.UnpicklingError as e:
            if trusted:
                raise
            raise _refused(filename, e) from None
        finally:
            os.environ.pop(switch)
            os.environ.update({k: v for k, v in saved.items() if v is not None})

    return load


def _patch_checkpoint_loading():
    from mmengine.runner.checkpoint import CheckpointLoader
    torch.serialization.add_safe_globals(checkpoint_safe_globals())
    if CheckpointLoader._schemes.get('') is not load_local_checkpoint:
        CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if prefix and not getattr(loader, 'is_mmseg_rass_patch', False):
            CheckpointLoader._schemes[prefix] = _safe_remote_loader(loader)


class _MetadataDistribution:
    """The part of ``pkg_resources.Distribution`` that mmengine uses."""

    def __init__(self, dist):
        self._dist = dist
        self.location = str(dist.locate_file(''))

    def has_metadata(self, name):
        return self._dist.read_text(name) is not None

    def get_metadata(self, name):
        return self._dist.read_text(name) or ''


class DistributionNotFound(Exception):
    """``pkg_resources.DistributionNotFound`` of the stand-in."""


def get_distribution(name):
    """``pkg_resources.get_distribution`` of the stand-in."""
    try:
        return _MetadataDistribution(importlib.metadata.distribution(name))
    except importlib.metadata.PackageNotFoundError as e:
        raise DistributionNotFound(name) from e


class _PkgResourcesStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and builds the ``pkg_resources`` stand-in (so mmengine's ``reload`` works too)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'pkg_resources':
            return None
        return importlib.machinery.ModuleSpec('pkg_resources', self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__doc__ = 'mmseg_rass stand-in for pkg_resources (setuptools >= 82 dropped it).'
        module.DistributionNotFound = DistributionNotFound
        module.get_distribution = get_distribution
        module.is_mmseg_rass_stand_in = True


def _patch_pkg_resources():
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
    if any(isinstance(f, _PkgResourcesStandIn) for f in sys.meta_path):
        return
    try:
        importlib.import_module('pkg_resources')
    except ImportError:
        sys.modules.pop('pkg_resources', None)
        sys.meta_path.insert(0, _PkgResourcesStandIn())


def _cpu_only():
    """Whether mmengine would run on the CPU (no CUDA, NPU, MLU, MUSA or MPS device)."""
    from mmengine.device import get_device
    return get_device() == 'cpu'


def _patch_dist_init():
    from mmengine.dist import utils as dist_utils
    original = dist_utils._init_dist_pytorch
    if getattr(original, 'is_mmseg_rass_patch', False):
        return

    @_patched
    @functools.wraps(original)
    def init_dist_pytorch(backend='nccl', init_backend='torch', **kwargs):
        if init_backend != 'torch' or not _cpu_only():
            return original(backend, init_backend=init_backend, **kwargs)
        from mmengine.logging import print_log
        if backend == 'nccl':
            backend = 'gloo'
            print_log('no GPU: the process group uses the gloo backend (nccl needs CUDA)',
                      logger='current')
        dist.init_process_group(backend=backend, **kwargs)

    dist_utils._init_dist_pytorch = init_dist_pytorch


def _patch_ddp_device_ids():
    from mmengine.model.wrappers import MMDistributedDataParallel
    original = MMDistributedDataParallel.__init__
    if getattr(original, 'is_mmseg_rass_patch', False):
        return

    @_patched
    @functools.wraps(original)
    def __init__(self, module, detect_anomalous_params=False, **kwargs):
        params = list(module.parameters()) + list(module.buffers())
        if kwargs.get('device_ids') is not None and params and all(
                p.device.type == 'cpu' for p in params):
            kwargs['device_ids'] = None  # DDP refuses device ids for a CPU module
        original(self, module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = __init__
    check_sync_bn = MMDistributedDataParallel._passing_sync_batchnorm_handle

    @_patched
    @functools.wraps(check_sync_bn)
    def passing_sync_batchnorm_handle(self, module):
        if self.device_type != 'cpu':  # torch refuses SyncBN on CPU: it runs on CPU here
            check_sync_bn(self, module)

    MMDistributedDataParallel._passing_sync_batchnorm_handle = passing_sync_batchnorm_handle


class CPUSyncBatchNormFunction(torch.autograd.Function):
    """Synchronised batch norm on CPU tensors (torch's SyncBN kernels exist for GPUs only).

    The computation of ``torch.nn.SyncBatchNorm`` in training: the batch mean and (biased)
    variance are taken over the samples of every process in ``group`` (sums all-reduced), the
    running statistics are updated with the unbiased variance, and the input gradient uses the
    all-reduced sums of ``grad`` and ``grad * x_hat``; the weight and bias gradients stay local
    (DDP averages them), as in torch. Statistics are computed in float32.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, channels] + [1] * (x.dim() - 2)
        acc = x.float()
        sums = torch.cat([acc.sum(dims), acc.new_tensor([acc.numel() // channels])])
        dist.all_reduce(sums, group=group)
        count = sums[-1].item()
        if count <= 1:
            raise ValueError('Expected more than 1 value per channel when training, got '
                             f'{int(count)} over all processes')
        mean = sums[:-1] / count
        centred = acc - mean.view(shape)
        sq_sum = (centred * centred).sum(dims)
        dist.all_reduce(sq_sum, group=group)
        invstd = torch.rsqrt(sq_sum / count + eps)
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            unbiased = (sq_sum / (count - 1)).to(running_var.dtype)
            running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        x_hat = centred * invstd.view(shape)
        out = x_hat
        if weight is not None:
            out = out * weight.float().view(shape) + bias.float().view(shape)
        ctx.save_for_backward(x_hat, weight, invstd)
        ctx.count, ctx.group = count, group
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, invstd = ctx.saved_tensors
        channels = x_hat.shape[1]
        dims = [0, *range(2, x_hat.dim())]
        shape = [1, channels] + [1] * (x_hat.dim() - 2)
        grad = grad_out.float()
        sums = torch.cat([grad.sum(dims), (grad * x_hat).sum(dims)])
        grad_weight = grad_bias = None
        if weight is not None:  # local, as in torch: DDP averages parameter gradients
            grad_bias = sums[:channels].to(weight.dtype)
            grad_weight = sums[channels:].to(weight.dtype)
        sums = sums.clone()
        dist.all_reduce(sums, group=ctx.group)
        sum_dy, sum_dy_xhat = sums[:channels], sums[channels:]
        scale = invstd if weight is None else invstd * weight.float()
        grad_in = (grad - (sum_dy / ctx.count).view(shape)
                   - x_hat * (sum_dy_xhat / ctx.count).view(shape)) * scale.view(shape)
        return grad_in.to(grad_out.dtype), grad_weight, grad_bias, None, None, None, None, None


def _patch_sync_batchnorm():
    sync_bn = torch.nn.SyncBatchNorm
    original = sync_bn.forward
    if getattr(original, 'is_mmseg_rass_patch', False):
        return

    @_patched
    @functools.wraps(original)
    def forward(self, input):
        if not (input.device.type == 'cpu' and self.training and dist.is_available()
                and dist.is_initialized()):
            return original(self, input)
        group = self.process_group or dist.group.WORLD
        if dist.get_world_size(group) < 2:
            return original(self, input)
        self._check_input_dim(input)
        self._check_non_zero_input_channels(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / self.num_batches_tracked.item()
        running_mean = self.running_mean if self.track_running_stats else None
        running_var = self.running_var if self.track_running_stats else None
        return CPUSyncBatchNormFunction.apply(input, self.weight, self.bias, running_mean, running_var,
                              self.eps, momentum, group)

    sync_bn.forward = forward


def _patch_runner_hooks():
    from mmengine.runner import Runner
    original = Runner.register_hooks
    if getattr(original, 'is_mmseg_rass_patch', False):
        return

    @_patched
    @functools.wraps(original)
    def register_hooks(self, default_hooks=None, custom_hooks=None):
        original(self, default_hooks, custom_hooks)
        from mmseg_rass.hooks.rng_state_hook import RNGStateHook
        if not any(isinstance(hook, RNGStateHook) for hook in self._hooks):
            self.register_hook(RNGStateHook())

    Runner.register_hooks = register_hooks


def _patch_dataset_checks():
    from mmengine.dataset import BaseDataset
    original_full_init = BaseDataset.full_init
    if getattr(original_full_init, 'is_mmseg_rass_patch', False):
        return
    original_serialize = BaseDataset._serialize_data

    @_patched
    @functools.wraps(original_full_init)
    def full_init(self):
        if self._fully_initialized:
            return
        original_full_init(self)
        from mmseg_rass.datasets.data_check import check_at_build
        check_at_build(self)

    @_patched
    @functools.wraps(original_serialize)
    def serialize_data(self):
        if not self.data_list:  # numpy would fail with 'need at least one array to concatenate'
            from mmseg_rass.datasets.data_check import empty_dataset_error
            raise empty_dataset_error(self)
        return original_serialize(self)

    BaseDataset.full_init = full_init
    BaseDataset._serialize_data = serialize_data


def _patch_label_loading():
    from mmseg.datasets.transforms import LoadAnnotations
    original = LoadAnnotations._load_seg_map
    if getattr(original, 'is_mmseg_rass_patch', False):
        return

    @_patched
    @functools.wraps(original)
    def load_seg_map(self, results):
        path = results.get('seg_map_path')
        try:
            return original(self, results)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'label {path} does not exist: check data_root and the '
                                    "dataset's data_prefix and seg_map_suffix") from e
        except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for broken files
            raise ValueError(f'cannot decode label {path} ({type(e).__name__}: {e}): the file '
                             'is corrupt or not an image; replace it or remove it from the '
                             'split') from e

    LoadAnnotations._load_seg_map = load_seg_map


def apply():
    """Apply every patch; safe to call any number of times."""
    _patch_pkg_resources()
    _patch_mmcv_ext()
    _patch_checkpoint_loading()
    _patch_dist_init()
    _patch_ddp_device_ids()
    _patch_sync_batchnorm()
    _patch_runner_hooks()
    _patch_dataset_checks()
    _patch_label_loading()
