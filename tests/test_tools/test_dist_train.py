"""tools/dist_train.sh and tools/dist_test.sh on 2 CPU processes (gloo), against one process."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

# Each process appends its loss per iteration to <work_dir>/loss_rank<R>.jsonl.
LOSS_PROBE = '''
import json, os
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

@HOOKS.register_module()
class LossProbeHook(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        path = os.path.join(runner.work_dir, f'loss_rank{get_rank()}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter, loss=outputs['loss'].item())) + '\\n')
'''

# The baseline demo with a fixed pipeline (no random augmentation) and no dropout, so that
# 2 processes x 2 images and 1 process x 4 images see the same samples at every iteration;
# SyncBN, so that both normalise over the same 4 images.
CONFIG = '''
_base_ = ['{repo}/configs/baseline/fpn_r18_demo_cityscapes.py']
custom_imports = dict(imports=['mmseg_rass', 'loss_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='LossProbeHook')]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(data_preprocessor=dict(size=(64, 128)), backbone=dict(norm_cfg=norm_cfg),
             decode_head=dict(norm_cfg=norm_cfg, dropout_ratio=0.0))
pipeline = [dict(type='LoadImage'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
train_dataloader = dict(batch_size={batch}, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='{data}', pipeline=pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root='{data}', pipeline=pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=3, val_interval=3)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3))
'''


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch(args, probe_dir, repo_root):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1',
               PYTHONPATH=os.pathsep.join([repo_root, str(probe_dir)]))
    # cwd: mmengine's distributed result collection leaves a .dist_test folder there
    return subprocess.Popen(args, cwd=probe_dir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def losses(work_dir, rank):
    with open(work_dir / f'loss_rank{rank}.jsonl') as f:
        return [json.loads(line)['loss'] for line in f]


@pytest.fixture(scope='module')
def runs(tmp_path_factory, demo_data_root, repo_root):
    """The same 3 iterations on 2 gloo processes (2 images each) and on 1 process (4 images)."""
    tmp = tmp_path_factory.mktemp('dist')
    (tmp / 'loss_probe.py').write_text(LOSS_PROBE)
    for name, batch in (('two', 2), ('one', 4)):
        (tmp / f'{name}.py').write_text(textwrap.dedent(CONFIG).format(
            repo=repo_root, data=demo_data_root, batch=batch))
    two = launch(['bash', f'{repo_root}/tools/dist_train.sh', str(tmp / 'two.py'), '2',
                  '--work-dir', str(tmp / 'work_two')], tmp, repo_root)
    # meanwhile, one process here (this interpreter has already imported mmseg)
    from mmengine.config import Config
    from mmengine.runner import Runner
    sys.path.insert(0, str(tmp))
    try:
        cfg = Config.fromfile(str(tmp / 'one.py'))
        cfg.work_dir = str(tmp / 'work_one')
        Runner.from_cfg(cfg).train()
    finally:
        sys.path.remove(str(tmp))
    log = two.communicate(timeout=600)[0]
    assert two.returncode == 0, log[-4000:]
    return tmp, log


def test_two_gloo_processes_train_like_one(runs):
    tmp, log = runs
    assert 'the process group uses the gloo backend' in log
    assert 'Distributed training: True' in log
    two = [losses(tmp / 'work_two', rank) for rank in (0, 1)]
    one = losses(tmp / 'work_one', 0)
    assert len(one) == 3 and all(len(r) == 3 for r in two)
    # each process's loss is the mean over its 2 images: their mean is the 4-image loss
    mean_two = [(a + b) / 2 for a, b in zip(*two)]
    assert all(v == v and abs(v) < 1e3 for v in mean_two + one)  # finite
    for step, (a, b) in enumerate(zip(mean_two, one)):
        assert abs(a - b) <= 1e-3 * abs(b), (step, mean_two, one)
    assert (tmp / 'work_two' / 'iter_3.pth').is_file()
    assert 'mIoU' in log


def test_dist_test_runs_test_py_under_the_venv_torchrun(tmp_path, repo_root):
    # dist_test.sh differs from dist_train.sh only in its command line (the distributed test
    # loop itself is the validation run above): check that command line with a stand-in
    # interpreter that records its arguments
    record = tmp_path / 'argv.txt'
    python = tmp_path / 'python'
    python.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    python.chmod(0o755)
    env = dict(os.environ, PYTHON=str(python), PORT='29999')
    proc = subprocess.run(['bash', 'tools/dist_test.sh', 'cfg.py', 'ckpt.pth', '2', '--show-dir',
                           'out'], cwd=repo_root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert record.read_text().split('\n')[:-1] == [
        '-m', 'torch.distributed.run', '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1',
        '--nproc_per_node=2', '--master_port=29999', f'{repo_root}/tools/test.py', 'cfg.py',
        'ckpt.pth', '--launcher', 'pytorch', '--show-dir', 'out']
    usage = subprocess.run(['bash', 'tools/dist_test.sh', 'cfg.py'], cwd=repo_root, env=env,
                           capture_output=True, text=True)
    assert usage.returncode == 2 and 'usage:' in usage.stderr
    missing = subprocess.run(['bash', 'tools/dist_test.sh', 'cfg.py', 'ckpt.pth', '2'],
                             cwd=repo_root, capture_output=True, text=True,
                             env=dict(env, PYTHON=str(tmp_path / 'none')))
    assert missing.returncode == 1 and 'tools/setup_env.sh' in missing.stderr
