"""Version shims: what mmseg 1.2.2, mmengine 0.10.7 and mmcv 2.1.0 need on today's torch and
setuptools. Without them mmseg does not import, ``mmseg::`` configs do not resolve, or
mmengine's own checkpoints do not load. Each is applied at ``import mmseg_rass`` unless its
switch (:data:`mmseg_rass.compat.CHANGES`) is off, and does nothing where the stack does not need
it.
"""
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import pickle
import sys
import types
import warnings

import torch

INSTALL_OPS_HINT = ('it needs mmcv with compiled ops: run `MMCV_FULL=1 bash tools/setup_env.sh` '
                    '(builds mmcv 2.1.0 with ops against the installed torch, see README)')


# -- mmcv._ext ---------------------------------------------------------------------------------
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


def patch_mmcv_ext():
    """``mmcv-lite`` has no ``mmcv._ext``, and mmseg imports ``mmcv.ops.point_sample`` (pure
    PyTorch) unguarded: a stand-in module lets ``mmcv.ops`` import; a compiled op raises
    :class:`MissingCompiledOpError` naming it."""
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
    try:
        ext = sys.modules.get('mmcv._ext') or importlib.import_module('mmcv._ext')
    except ImportError:
        return False
    return not getattr(ext, 'is_mmseg_rass_stand_in', False)


# -- pkg_resources -----------------------------------------------------------------------------
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


def patch_pkg_resources():
    """mmengine resolves ``mmseg::`` configs through ``pkg_resources``, which setuptools >= 82
    no longer ships: a stand-in backed by :mod:`importlib.metadata` when it is missing; with
    setuptools < 82 its deprecation warning (at every config load) is silenced."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
    if any(isinstance(f, _PkgResourcesStandIn) for f in sys.meta_path):
        return
    try:
        importlib.import_module('pkg_resources')
    except ImportError:
        sys.modules.pop('pkg_resources', None)
        sys.meta_path.insert(0, _PkgResourcesStandIn())


# -- what mmengine's checkpoints hold, for torch >= 2.6's weights_only=True default ------------
class _AttributeSource:
    """Stands for a class in a checkpoint that only reaches some of its attributes through
    ``getattr``: it cannot be called (a pickle cannot build an instance through it)."""

    __slots__ = ('target', 'names')

    def __init__(self, target, names):
        self.target, self.names = target, frozenset(names)

    def __repr__(self):
        return f'<attributes {sorted(self.names)} of {self.target.__qualname__}>'


@functools.lru_cache(maxsize=None)
def _attribute_sources():
    from mmengine.optim.scheduler.param_scheduler import OneCycleParamScheduler
    # OneCycleParamScheduler.state_dict() holds its annealing function (a staticmethod),
    # pickled as getattr(OneCycleParamScheduler, '_annealing_cos' / '_annealing_linear').
    return (_AttributeSource(OneCycleParamScheduler, ('_annealing_cos', '_annealing_linear')),)


def _checkpoint_getattr(obj, name):
    """``getattr`` as mmengine's checkpoints use it, and nothing else.

    A message hub's ``HistoryBuffer`` pickles its statistics methods (``min``, ``max``, ...) as
    ``getattr(HistoryBuffer, 'min')``; ``OneCycleParamScheduler`` its annealing function.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and callable(getattr(obj, name, None)):
        return getattr(obj, name)
    if isinstance(obj, _AttributeSource) and name in obj.names:
        return getattr(obj.target, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def checkpoint_safe_globals():
    """What mmengine's checkpoints hold besides tensors, for ``weights_only=True`` loading.

    The message hub (``HistoryBuffer`` with numpy arrays, its statistics methods), numpy
    scalars, arrays and dtypes of numbers and strings (numpy 1.x and 2.x module names), the
    annealing functions of ``OneCycleParamScheduler`` (through :func:`_checkpoint_getattr`).
    Optimizer states, every other scheduler, EMA models and the AMP loss scaler hold only
    tensors, numbers and strings. No object arrays, no callable that runs code.

    Returns:
        list: Items for ``torch.serialization.add_safe_globals``.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    items = [HistoryBuffer, (_checkpoint_getattr, 'builtins.getattr'), np.ndarray, np.dtype]
    items += [(source, f'{source.target.__module__}.{source.target.__qualname__}')
              for source in _attribute_sources()]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        items += [(multiarray._reconstruct, f'{module}._reconstruct'),
                  (multiarray.scalar, f'{module}.scalar')]
    kinds = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
             np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128,
             np.str_, np.bytes_]
    items += [type(np.dtype(kind)) for kind in kinds]
    return items


def register_checkpoint_globals():
    """torch >= 2.6 loads with ``weights_only=True`` by default, which refuses what mmengine
    0.10.7 writes into every checkpoint: its types are registered as safe globals."""
    torch.serialization.add_safe_globals(checkpoint_safe_globals())  # a set: idempotent
