"""SAMDistillHook in a real run of the tiny SPD demo config; tools/test.py without SAM/priors."""
import os.path as osp
import shutil

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmseg_rass.sam import StandInMaskGenerator, extract_sam_priors

BLOCK_SAM = ("import runpy, sys; sys.modules['segment_anything'] = None; "
             "sys.argv = ['tools/test.py'] + sys.argv[1:]; "
             "runpy.run_path('tools/test.py', run_name='__main__')")


def _tiny_cfg(repo_root, data_root, prior_dir, work_dir):
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs/spd/spd_segformer-tiny_demo-cityscapes-lq.py'))
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = str(data_root)
        for step in loader.dataset.pipeline:
            if step['type'] == 'LoadSAMPriors':
                step['prior_dir'] = str(prior_dir)
            elif step['type'] == 'RandomResize':
                step.update(scale=(128, 64), ratio_range=(1.0, 1.2))
            elif step['type'] == 'RandomCrop':
                step['crop_size'] = (64, 128)
            elif step['type'] == 'Resize':
                step['scale'] = (128, 64)
        # the hook is under test, not the degradation: keep the pipelines cheap
        loader.dataset.pipeline = [s for s in loader.dataset.pipeline if s['type'] != 'Degrade']
    cfg.train_dataloader.batch_size = 2
    cfg.model.data_preprocessor.size = (64, 128)
    cfg.train_cfg.update(max_iters=2, val_interval=100)
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    return cfg


def test_hook_trains_teacher_outside_checkpoint_and_test_needs_no_sam(
        repo_root, demo_data_root, tmp_path, tool_runner):
    prior_dir = tmp_path / 'priors'
    cfg = _tiny_cfg(repo_root, demo_data_root, prior_dir, tmp_path / 'work')
    extract_sam_priors(cfg.train_dataloader.dataset.to_dict(), str(prior_dir),
                       StandInMaskGenerator(), dict(sam_type='stand_in'), progress=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'SAMDistillHook')
    teacher = hook.teacher
    # the teacher trained with its own optimizer, the runner's optimizer never saw it
    assert hook.teacher_optim.optimizer.state
    runner_params = {id(p) for g in runner.optim_wrapper.optimizer.param_groups
                     for p in g['params']}
    assert not runner_params & {id(p) for p in teacher.parameters()}
    assert runner.model.teacher is None  # detached after training
    ckpt = torch.load(osp.join(cfg.work_dir, 'iter_2.pth'), map_location='cpu',
                      weights_only=False)
    assert 'sam_distill_teacher' not in ckpt
    assert set(ckpt['state_dict']) == set(runner.model.state_dict())
    assert not any(k.startswith(('neck.', 'sgr', 'spd')) for k in ckpt['state_dict'])
    # save_teacher=True: teacher and its optimizer go into the checkpoint and come back on resume
    hook.save_teacher = True
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    state = checkpoint['sam_distill_teacher']
    assert set(state) == {'state_dict', 'optimizer'}
    assert any(k.startswith('neck.units.0') for k in state['state_dict'])
    hook.after_load_checkpoint(runner, checkpoint)
    assert hook._resume_state is state

    # tools/test.py: the student alone, with segment_anything unimportable and no priors
    shutil.rmtree(prior_dir)
    cfg_path = tmp_path / 'spd_tiny.py'
    cfg.log_level = 'INFO'
    cfg.dump(str(cfg_path))
    proc = tool_runner(['-c', BLOCK_SAM, str(cfg_path), osp.join(cfg.work_dir, 'iter_2.pth'),
                        '--work-dir', str(tmp_path / 'test')])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'mIoU' in proc.stdout + proc.stderr
