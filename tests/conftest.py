"""Shared fixtures. Tests run with ``--import-mode=importlib`` (mmseg installs a ``tests`` package)."""
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope('mmseg')  # as mmseg's runner does: 'LoadAnnotations' means mmseg's


# Device-parametrised tests take the ``device`` fixture: each runs on the CPU and, marked
# ``cuda``, on the GPU (skipped without one). ``pytest -m cuda`` selects the GPU half
# (tools/gpu_check.py runs it on a lent GPU machine).
@pytest.fixture(params=['cpu', pytest.param('cuda', marks=pytest.mark.cuda)])
def device(request):
    """``'cpu'`` or ``'cuda'``; the CUDA case is skipped when no GPU is visible."""
    import torch
    if request.param == 'cuda' and not torch.cuda.is_available():
        pytest.skip('no CUDA device')
    return request.param


@pytest.fixture(scope='session')
def repo_root():
    """Absolute path of the repository root."""
    return REPO_ROOT


@pytest.fixture(scope='module')
def one_torch_thread():
    """One intra-op torch thread for a module of tiny-tensor tests (much faster on a shared CPU)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def cached_mmseg_model_index():
    """Read mmseg's model-index YAML files once per test module: mmengine re-reads all of them
    for every ``mmseg::`` base of a config (seconds per base on a small CPU)."""
    import functools

    import mmengine.config.utils
    original = mmengine.config.utils.load
    mmengine.config.utils.load = functools.lru_cache(maxsize=None)(original)
    yield
    mmengine.config.utils.load = original


@pytest.fixture(scope='session')
def demo_data_root(tmp_path_factory):
    """A tiny generated demo dataset (4 train / 2 val images, 64x128, Cityscapes layout)."""
    from mmseg_rass.datasets.demo_data import make_demo_cityscapes
    root = tmp_path_factory.mktemp('demo_cityscapes')
    make_demo_cityscapes(str(root), num_train=4, num_val=2, height=64, width=128)
    return root


def run_tool(args, cwd=REPO_ROOT, timeout=600):
    """Run a repository tool (``tools/x.py ...``) in a subprocess; return the CompletedProcess."""
    import subprocess
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def load_tool(name):
    """Import ``tools/<name>.py`` as a fresh module (the tools are scripts, not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'{name}_tool',
                                                  os.path.join(REPO_ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def tool_loader():
    """Return :func:`load_tool` (``tool_loader('infer')`` is ``tools/infer.py`` as a module)."""
    return load_tool


@pytest.fixture(scope='session')
def tool_runner():
    """Return :func:`run_tool` (runs ``python tools/...`` from the repository root)."""
    return run_tool
