"""Every workaround mmseg_rass needs to run mmsegmentation 1.2.2 on a current stack.

Applied by ``import mmseg_rass`` (and by ``tools/train.py`` / ``tools/test.py`` before anything
else), before mmseg is imported. Each patch is idempotent, checks for the condition it fixes and
does nothing when that condition is absent; ``tests/test_compat.py`` shows the failure each one
prevents.

1. ``mmcv._ext`` stand-in. ``mmcv-lite`` ships ``mmcv/ops/*.py`` without the compiled
   extension, and mmseg 1.2.2 imports ``mmcv.ops.point_sample`` (pure PyTorch) unguarded, so
   ``import mmseg.models`` fails. The stand-in module lets ``mmcv.ops`` import; calling any
   compiled op raises :class:`MissingCompiledOpError` naming the op and how to get it.
2. Checkpoint loading on torch >= 2.6. ``torch.load`` defaults to ``weights_only=True`` there,
   and mmengine 0.10.7 saves checkpoints holding message hubs, numpy scalars and configs, so
   ``--resume``, ``load_from`` and ``tools/test.py`` fail on the user's own checkpoints. Local
   files are loaded with ``weights_only=False`` (they are the user's own files; remote ones
   keep torch's default).
3. ``pkg_resources``. mmengine resolves ``mmseg::`` base configs through ``pkg_resources``,
   which setuptools >= 82 no longer ships. When it is missing, a minimal stand-in backed by
   :mod:`importlib.metadata` provides the three names mmengine uses. With setuptools 81 the real
   module warns that it is deprecated at every config load; that warning is silenced.
"""
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import os.path as osp
import sys
import types
import warnings

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


def load_local_checkpoint(filename, map_location=None):
    """mmengine's loader for local files, with ``weights_only=False`` for torch >= 2.6."""
    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found: pass the path of a .pth file '
                                'written by tools/train.py (or a model-zoo checkpoint)')
    return torch.load(filename, map_location=map_location, weights_only=False)


def _patch_checkpoint_loading():
    from mmengine.runner.checkpoint import CheckpointLoader
    if CheckpointLoader._schemes.get('') is not load_local_checkpoint:
        CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)


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


def apply():
    """Apply every patch; safe to call any number of times."""
    _patch_pkg_resources()
    _patch_mmcv_ext()
    _patch_checkpoint_loading()
