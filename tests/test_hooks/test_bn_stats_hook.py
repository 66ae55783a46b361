"""Plain BN on 2 gloo processes: the logged validation score is the one its checkpoint gives."""
import json
import os
import re
import socket
import subprocess
import sys
import textwrap

# Each process writes the sum of its BN running means before and after RankZeroBNStatsHook
# (priority LOW) at each validation: NORMAL runs before it, LOWEST after.
PROBE = '''
import json, os
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from mmseg_rass.hooks.bn_stats_hook import norm_stats

@HOOKS.register_module()
class BNStatsProbeHook(Hook):
    def __init__(self, when):  # the runner sets the priority given in the config
        self.when = when

    def before_val_epoch(self, runner):
        total = sum(float(t.double().sum()) for t in norm_stats(runner.model))
        with open(os.path.join(runner.work_dir, f'bn_{self.when}_rank{get_rank()}.json'), 'w') as f:
            json.dump(total, f)
'''

CONFIG = '''
_base_ = ['{repo}/configs/baseline/fpn_r18_demo_cityscapes.py']
custom_imports = dict(imports=['mmseg_rass', 'bn_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='BNStatsProbeHook', when='before', priority='NORMAL'),
                dict(type='BNStatsProbeHook', when='after', priority='LOWEST')]
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(data_preprocessor=dict(size=(64, 128)), backbone=dict(norm_cfg=norm_cfg),
             decode_head=dict(norm_cfg=norm_cfg, dropout_ratio=0.0))
pipeline = [dict(type='LoadImage'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='{data}', pipeline=pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root='{data}', pipeline=pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
'''


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def dist_train(args, cwd, repo_root):
    """tools/dist_train.sh; tried again once if the free port was taken in between."""
    for _ in range(2):
        env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
                   OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1',
                   PYTHONPATH=os.pathsep.join([repo_root, str(cwd)]))
        proc = subprocess.run(['bash', f'{repo_root}/tools/dist_train.sh', *args], cwd=cwd,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=600)
        if 'address already in use' not in proc.stdout.lower():
            break
    return proc


def test_logged_val_miou_is_the_checkpoints(tmp_path, demo_data_root, repo_root):
    (tmp_path / 'bn_probe.py').write_text(PROBE)
    config = tmp_path / 'bn.py'
    config.write_text(textwrap.dedent(CONFIG).format(repo=repo_root, data=demo_data_root))
    work_dir = tmp_path / 'work'
    proc = dist_train([str(config), '2', '--work-dir', str(work_dir)], tmp_path, repo_root)
    log = proc.stdout
    assert proc.returncode == 0, log[-4000:]

    def stats(when):
        return [json.loads((work_dir / f'bn_{when}_rank{r}.json').read_text()) for r in (0, 1)]

    before, after = stats('before'), stats('after')
    assert before[0] != before[1]  # per-process BN: each process has its own statistics
    assert after == [before[0], before[0]]  # validation runs on rank 0's: its checkpoint's
    assert "validation uses rank 0's running statistics" in log
    logged = re.findall(r'Iter\(val\) \[\d+/\d+\]\s+aAcc: ([\d.]+)\s+mIoU: ([\d.]+)', log)
    assert len(logged) == 1, log[-3000:]

    # the checkpoint, evaluated in one process (this interpreter has imported mmseg_rass)
    from mmengine.config import Config
    from mmengine.runner import Runner
    sys.path.insert(0, str(tmp_path))
    try:
        cfg = Config.fromfile(str(config))
        cfg.work_dir = str(tmp_path / 'test')
        cfg.load_from = str(work_dir / 'iter_2.pth')
        cfg.custom_hooks = []
        metrics = Runner.from_cfg(cfg).test()
    finally:
        sys.path.remove(str(tmp_path))
    assert (metrics['aAcc'], metrics['mIoU']) == tuple(float(v) for v in logged[0])
