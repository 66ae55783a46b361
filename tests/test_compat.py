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
    assert CheckpointLoader._schemes[''] is compat.load_local_checkpoint


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


def test_local_checkpoints_with_python_objects_load(tmp_path):
    # mmengine checkpoints hold numpy scalars and message-hub objects, which torch >= 2.6
    # refuses with its default weights_only=True.
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'best': np.float64(0.5)}}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['best'] == 0.5
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))


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
