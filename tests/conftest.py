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


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server over a new folder: ``(folder, base URL)``."""
    import functools
    import http.server
    import threading
    folder = tmp_path / 'www'
    folder.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):

        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def save_random_checkpoint(config, path, seed=0):
    """Build ``config``'s model with random weights (seeded), save it as an mmengine checkpoint."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(str(config)).model)
    model.init_weights()
    save_checkpoint(dict(meta=dict(), state_dict=model.state_dict()), str(path))


@pytest.fixture(scope='session')
def random_checkpoint():
    """Return :func:`save_random_checkpoint` (``random_checkpoint(config, path, seed)``)."""
    return save_random_checkpoint


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


BASICSR_VERSION = '1.4.2'


@pytest.fixture(scope='session')
def basicsr_src():
    """The unpacked basicsr 1.4.2 sdist (PyPI), downloaded once into the user cache.

    basicsr 1.4.2 does not import with torchvision >= 0.17 (its ``degradations.py`` imports
    ``torchvision.transforms.functional_tensor``), so tests load the files they need by path.
    Skipped when pip cannot download it (no package index).
    """
    import subprocess
    import tarfile
    cache = os.path.join(os.environ.get('MMSEG_RASS_CACHE',
                                        os.path.expanduser('~/.cache/mmseg_rass')), 'basicsr')
    src = os.path.join(cache, f'basicsr-{BASICSR_VERSION}')
    if not os.path.isfile(os.path.join(src, 'basicsr', 'version.py')):
        os.makedirs(cache, exist_ok=True)
        done = subprocess.run(
            [sys.executable, '-m', 'pip', 'download', f'basicsr=={BASICSR_VERSION}', '--no-deps',
             '--no-binary', ':all:', '--no-build-isolation', '-q', '-d', cache],
            capture_output=True, text=True, timeout=300)
        archive = os.path.join(cache, f'basicsr-{BASICSR_VERSION}.tar.gz')
        if done.returncode or not os.path.isfile(archive):
            pytest.skip(f'basicsr {BASICSR_VERSION} sdist not downloadable (pip: '
                        f'{done.stderr.strip().splitlines()[-1:]})')
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter='data')
    return src


@pytest.fixture(scope='session')
def basicsr_metrics(basicsr_src):
    """basicsr's ``metrics/psnr_ssim.py`` and ``metrics/niqe.py`` with the helpers they import,
    loaded by path from the sdist under a ``basicsr`` package of stand-in modules."""
    import importlib.util
    import types

    import scipy.ndimage
    names = ('basicsr', 'basicsr.utils', 'basicsr.metrics', 'basicsr.utils.registry',
             'basicsr.utils.color_util', 'basicsr.utils.matlab_functions',
             'basicsr.metrics.metric_util', 'scipy.ndimage.filters')
    saved = {n: sys.modules.get(n) for n in names}

    def load(name, rel):
        spec = importlib.util.spec_from_file_location(name, os.path.join(basicsr_src, rel))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    try:
        for pkg in ('basicsr', 'basicsr.utils', 'basicsr.metrics'):
            sys.modules[pkg] = types.ModuleType(pkg)
        sys.modules.setdefault('scipy.ndimage.filters', scipy.ndimage)
        load('basicsr.utils.registry', 'basicsr/utils/registry.py')
        color = load('basicsr.utils.color_util', 'basicsr/utils/color_util.py')
        sys.modules['basicsr.utils'].bgr2ycbcr = color.bgr2ycbcr
        load('basicsr.utils.matlab_functions', 'basicsr/utils/matlab_functions.py')
        load('basicsr.metrics.metric_util', 'basicsr/metrics/metric_util.py')
        psnr_ssim = load('basicsr_ref_psnr_ssim', 'basicsr/metrics/psnr_ssim.py')
        niqe = load('basicsr_ref_niqe', 'basicsr/metrics/niqe.py')
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return types.SimpleNamespace(calculate_psnr=psnr_ssim.calculate_psnr,
                                 calculate_ssim=psnr_ssim.calculate_ssim,
                                 calculate_niqe=niqe.calculate_niqe,
                                 niqe_params=os.path.join(basicsr_src,
                                                          'basicsr/metrics/niqe_pris_params.npz'))
