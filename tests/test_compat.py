"""Each compat patch, with the failure it prevents (shown in a fresh interpreter)."""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mmseg_rass import compat


def run_python(code, *args, env_extra=None):
    """Run ``code`` in a fresh interpreter (no patch applied unless the code applies it)."""
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_apply_is_idempotent():
    before = (list(sys.meta_path), sys.modules['mmcv._ext'])
    compat.apply()
    compat.apply()
    assert list(sys.meta_path) == before[0]
    assert sys.modules['mmcv._ext'] is before[1]
    from mmengine.runner.checkpoint import CheckpointLoader
    from mmengine.dist import utils as dist_utils
    from mmengine.model import MMDistributedDataParallel as DDP
    from mmengine.dataset import BaseDataset
    from mmengine.runner import Runner
    from mmseg.datasets.transforms import LoadAnnotations
    patched = [dist_utils._init_dist_pytorch, DDP.__init__, DDP._passing_sync_batchnorm_handle,
               torch.nn.SyncBatchNorm.forward, Runner.register_hooks, BaseDataset.full_init,
               BaseDataset._serialize_data, LoadAnnotations._load_seg_map,
               *CheckpointLoader._schemes.values()]
    assert all(getattr(f, 'is_mmseg_rass_patch', False) for f in patched)
    # applying again wraps nothing twice
    assert not hasattr(patched[0].__wrapped__, 'is_mmseg_rass_patch')
    assert not hasattr(torch.nn.SyncBatchNorm.forward.__wrapped__, 'is_mmseg_rass_patch')
    assert not any(hasattr(f.__wrapped__, 'is_mmseg_rass_patch')
                   for f in CheckpointLoader._schemes.values())


def test_registry_and_docs_list_the_same_changes(repo_root):
    """docs/reliability.md's table is the registry: same names, kinds, switches, off values."""
    with open(os.path.join(repo_root, 'docs', 'reliability.md'), encoding='utf-8') as f:
        rows = [[cell.strip().strip('`') for cell in line.strip().strip('|').split('|')]
                for line in f if line.startswith('| `')]
    documented = [(name, kind, switch) for name, kind, switch, *_ in rows
                  if kind in ('shim', 'policy')]
    assert documented == [(c.name, c.kind, f'{c.switch}={c.off}') for c in compat.CHANGES]
    assert [c.read for c in compat.CHANGES if c.kind == 'shim'] == ['import'] * 3
    assert {c.read for c in compat.CHANGES if c.kind == 'policy'} == {'call'}


def test_shims_switched_off_are_not_applied(monkeypatch):
    applied = []
    changes = tuple(c._replace(apply=lambda name=c.name: applied.append(name))
                    if c.apply else c for c in compat.CHANGES)
    monkeypatch.setattr(compat, 'CHANGES', changes)
    compat.apply()
    everything = list(applied)
    assert everything == [c.name for c in changes if c.apply]
    for change in (c for c in changes if c.kind == 'shim'):
        applied.clear()
        monkeypatch.setenv(change.switch, 'off')
        compat.apply()
        assert applied == [name for name in everything if name != change.name]
        monkeypatch.delenv(change.switch)
    # policies are always installed and read their switch at each call (tests below)
    for change in (c for c in changes if c.kind == 'policy'):
        monkeypatch.setenv(change.switch, change.off)
        assert not compat.enabled(change.name)
        monkeypatch.delenv(change.switch)
        assert compat.enabled(change.name)


@pytest.mark.skipif(compat.has_compiled_ops(), reason='full mmcv with compiled ops is installed')
def test_mmcv_ext_stand_in_lets_mmseg_import_and_names_missing_ops():
    unpatched = run_python('import mmseg.models')
    assert unpatched.returncode != 0 and "No module named 'mmcv._ext'" in unpatched.stderr
    patched = run_python('''
        from mmseg_rass import compat
        compat.apply()
        import mmseg.models
        from mmcv.ops import point_sample  # pure PyTorch: works
        import torch
        out = point_sample(torch.ones(1, 2, 4, 4), torch.full((1, 3, 2), 0.5))
        assert out.shape == (1, 2, 3)
        from mmengine.utils.dl_utils import mmcv_full_available
        assert not mmcv_full_available()
        from mmcv.ops import nms
        try:
            nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
        except compat.MissingCompiledOpError as e:
            print('ERR', e)
        ''')
    assert patched.returncode == 0, patched.stderr
    assert 'ERR mmcv op `nms` is not available' in patched.stdout
    assert 'MMCV_FULL=1' in patched.stdout


def test_mmengine_checkpoints_load_with_weights_only(tmp_path):
    # mmengine checkpoints hold numpy scalars and arrays and message-hub objects, which
    # torch >= 2.6 refuses with its default weights_only=True unless registered as safe.
    from mmengine.logging import MessageHub
    hub = MessageHub('compat_test')
    hub.update_scalar('train/loss', 1.5)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'best': np.float64(0.5)},
                'message_hub': hub.state_dict()}, path)
    registered = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
    finally:
        torch.serialization.add_safe_globals(registered)
    assert not set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['best'] == 0.5
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() == 1.5


def test_missing_local_checkpoint_names_the_file(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    with pytest.raises(FileNotFoundError, match='nope.pth not found'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))


def test_pkg_resources_stand_in_resolves_mmseg_configs(tmp_path):
    # Simulate setuptools >= 82: an importable-looking pkg_resources that fails to import.
    fake = tmp_path / 'pkg_resources'
    fake.mkdir()
    (fake / '__init__.py').write_text("raise ImportError('pkg_resources removed (setuptools>=82)')\n")
    code = '''
        import sys
        if sys.argv[1] == 'patched':
            from mmseg_rass import compat
            compat.apply()
        from mmengine.utils import get_installed_path, is_installed
        print(get_installed_path('mmsegmentation'), is_installed('mmsegmentation'),
              is_installed('not-a-package-xyz'))
        '''
    env = {'PYTHONPATH': str(tmp_path)}
    unpatched = run_python(code, 'unpatched', env_extra=env)
    assert unpatched.returncode != 0 and 'setuptools>=82' in unpatched.stderr
    patched = run_python(code, 'patched', env_extra=env)
    assert patched.returncode == 0, patched.stderr
    path, installed, missing = patched.stdout.split()
    assert path.endswith('mmseg') and installed == 'True' and missing == 'False'


def test_pkg_resources_deprecation_warning_is_silenced(repo_root):
    code = '''
        import warnings
        warnings.simplefilter('default')
        if __import__('sys').argv[1] == 'patched':
            import mmseg_rass
        from mmengine import Config
        Config.fromfile(__import__('sys').argv[2])
        '''
    config = os.path.join(repo_root, 'configs/baseline/fpn_r18_demo_cityscapes.py')
    unpatched = run_python(code, 'unpatched', config)
    patched = run_python(code, 'patched', config)
    assert patched.returncode == 0, patched.stderr
    assert 'pkg_resources is deprecated' in unpatched.stderr
    assert 'pkg_resources is deprecated' not in patched.stderr


DIST_SCRIPT = '''
import os, sys, types
import torch
import torch.distributed as dist
from mmengine.dist import init_dist

def say(line):  # one write per line: the two processes share stdout
    os.write(1, (line + '\\n').encode())

def attempt(name, fn):
    try:
        return fn()
    except Exception as e:  # a failure, reported by name
        say(f'{name} FAILED: {type(e).__name__}: {e}'.splitlines()[0])

# mmseg_rass.compat without the package's __init__ (which would import all of mmseg: slow)
package = types.ModuleType('mmseg_rass')
package.__path__ = [sys.argv[1]]
sys.modules['mmseg_rass'] = package
from mmseg_rass import compat
attempt('unpatched init_dist', lambda: init_dist('pytorch', backend='nccl'))
compat.apply()
from mmengine.model import MMDistributedDataParallel
os.environ['MMSEG_RASS_CPU_DISTRIBUTED'] = 'off'  # the switch: mmengine's behaviour again
attempt('switched-off init_dist', lambda: init_dist('pytorch', backend='nccl'))
del os.environ['MMSEG_RASS_CPU_DISTRIBUTED']
init_dist('pytorch', backend='nccl')  # as mmseg's default_runtime asks
rank, world = dist.get_rank(), dist.get_world_size()
say(f'BACKEND {dist.get_backend()}')

# The full batch, the same on every process; each process gets its half.
torch.manual_seed(0)
x_full = torch.randn(4, 3, 5, 5) * 3 + 1
coef = torch.randn(4, 3, 5, 5)
reference = torch.nn.BatchNorm2d(3)
with torch.no_grad():
    reference.weight.uniform_(0.5, 1.5)
    reference.bias.uniform_(-1, 1)
model = torch.nn.SyncBatchNorm(3)
model.load_state_dict(reference.state_dict())
x_ref = x_full.clone().requires_grad_()
(reference(x_ref) * coef).sum().backward()
half = slice(2 * rank, 2 * rank + 2)
x = x_full[half].clone().requires_grad_()

# what torch does without the patch (switched off), as the runner calls it
local_rank = int(os.environ['LOCAL_RANK'])
os.environ['MMSEG_RASS_CPU_DISTRIBUTED'] = 'off'
attempt('switched-off ddp', lambda: MMDistributedDataParallel(
    module=torch.nn.Conv2d(3, 3, 1), device_ids=[local_rank]))
attempt('switched-off syncbn', lambda: model(x))
del os.environ['MMSEG_RASS_CPU_DISTRIBUTED']

ddp = MMDistributedDataParallel(module=model, device_ids=[local_rank], broadcast_buffers=False)
out = ddp(x)
(out * coef[half]).sum().backward()
ref_out = torch.nn.functional.batch_norm(x_full, None, None, reference.weight, reference.bias,
                                         True).detach()
close = lambda a, b: torch.allclose(a, b, rtol=1e-5, atol=1e-5)
checks = dict(
    out=close(out.detach(), ref_out[half]),
    grad_in=close(x.grad, x_ref.grad[half]),
    # DDP averages the parameter gradients of the processes: reference / world size
    grad_weight=close(model.weight.grad, reference.weight.grad / world),
    grad_bias=close(model.bias.grad, reference.bias.grad / world),
    running_mean=close(model.running_mean, reference.running_mean),
    running_var=close(model.running_var, reference.running_var))
say(f"CHECKS {sorted(k for k, v in checks.items() if not v) or 'ALL OK'}")
del ddp, out  # nothing may keep the group alive into interpreter shutdown (gloo can abort there)
dist.barrier()  # neither process tears gloo down while the other still talks to it
compat.distributed.destroy_gloo_process_group()
say(f'DESTROYED {not dist.is_initialized()}')
'''


def run_torchrun(script_path, *args, nproc=2):
    """``python -m torch.distributed.run --standalone`` with ``nproc`` CPU processes."""
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                           f'--nproc_per_node={nproc}', str(script_path), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_distributed_on_cpu_uses_gloo_and_syncbn_matches_full_batch_bn(tmp_path):
    script = tmp_path / 'dist_cpu.py'
    script.write_text(DIST_SCRIPT)
    proc = run_torchrun(script, os.path.dirname(os.path.dirname(compat.__file__)))
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    # without the patches (or switched off): mmengine selects a CUDA device, DDP refuses
    # device_ids for a CPU module, torch's SyncBN has no CPU kernels
    assert out.count('unpatched init_dist FAILED') == 2, out
    assert out.count('switched-off init_dist FAILED') == 2, out
    assert out.count('switched-off ddp FAILED') == 2 and 'device_ids' in out
    assert out.count('switched-off syncbn FAILED: ValueError: SyncBatchNorm expected input '
                     'tensor to be on GPU') == 2, out
    assert out.count('FAILED') == 8, out
    assert out.count('BACKEND gloo') == 2
    assert out.count('CHECKS ALL OK') == 2, out
    assert out.count('DESTROYED True') == 2, out


def test_local_checkpoints_load_through_the_plugins_loader_under_mmengines_name(tmp_path):
    from mmengine.runner import checkpoint as mmengine_checkpoint
    loader = mmengine_checkpoint.CheckpointLoader._get_checkpoint_loader(str(tmp_path / 'a.pth'))
    assert loader.is_mmseg_rass_patch and loader.__name__ == 'load_from_local'
    assert loader.__wrapped__ is mmengine_checkpoint.load_from_local  # mmengine's, replaced
    torch.save({'w': torch.ones(1)}, tmp_path / 'a.pth')
    with pytest.raises(compat.CheckpointNotFoundError, match='b.pth not found'):
        loader(str(tmp_path / 'b.pth'))
    assert torch.equal(loader(str(tmp_path / 'a.pth'))['w'], torch.ones(1))


def toy_runner(tmp_path):
    """A runner around a one-layer model (no data): what mmengine builds for any config."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.BatchNorm1d(1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.norm(inputs)

    return Runner(model=Toy(), work_dir=str(tmp_path), default_scope='mmseg')


def test_which_hooks_the_runner_gains(tmp_path, monkeypatch):
    from mmengine import dist

    from mmseg_rass.hooks import RankZeroBNStatsHook, RNGStateHook

    def added():
        return {type(h) for h in toy_runner(tmp_path).hooks
                if type(h).__module__.startswith('mmseg_rass')}

    assert added() == {RNGStateHook}  # one process: exact resume only
    monkeypatch.setattr(dist, 'is_distributed', lambda: True)  # as under torchrun
    assert added() == {RNGStateHook, RankZeroBNStatsHook}
    monkeypatch.setenv('MMSEG_RASS_BN_STATS', 'off')
    assert added() == {RNGStateHook}
    monkeypatch.setenv('MMSEG_RASS_EXACT_RESUME', 'off')
    assert added() == set()


def test_label_errors_switch(tmp_path, monkeypatch):
    from mmseg.registry import TRANSFORMS
    label = tmp_path / 'label.png'
    label.write_bytes(b'\x89PNG\r\n\x1a\n broken')
    load = TRANSFORMS.build(dict(type='LoadAnnotations'))
    results = dict(seg_map_path=str(label), reduce_zero_label=False, seg_fields=[])
    with pytest.raises(ValueError, match=f'cannot decode label {label}'):
        load(dict(results))
    monkeypatch.setenv('MMSEG_RASS_LABEL_ERRORS', 'off')
    with pytest.raises(Exception) as plain:  # mmseg's own error, without the file name
        load(dict(results))
    assert str(label) not in str(plain.value)
