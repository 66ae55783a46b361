"""SAMDistillHook in real runs of the SPD demo configs: the teacher follows the run's
optimization, lives in checkpoints, resumes exactly; inference needs no SAM and no teacher."""
import os.path as osp
import shutil
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import MODELS

from mmseg_rass.hooks import SAMDistillHook
from mmseg_rass.models.losses import SGRLoss
from mmseg_rass.models.necks.spf_neck import SPFUnit
from mmseg_rass.models.segmentors import SAMCascadeTeacher
from mmseg_rass.sam import StandInMaskGenerator, extract_sam_priors

NECK = 'configs/spd/spd_segformer-tiny_demo-cityscapes-lq.py'
CASCADE = 'configs/spd/spd-cascade_segformer-tiny_demo-cityscapes-lq.py'


@pytest.fixture(autouse=True)
def plain_config_text(monkeypatch):
    """Config text without yapf formatting: mmengine formats the whole config several times
    per runner (log + dump), which dominates these tests' run time on a small CPU."""
    monkeypatch.setattr(Config, 'pretty_text', property(
        lambda self: '\n'.join(f'{k} = {v!r}' for k, v in self.to_dict().items())))


def _tiny_cfg(repo_root, config, data_root, prior_dir, work_dir, max_iters=2):
    cfg = Config.fromfile(osp.join(repo_root, config))
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
    cfg.model.data_preprocessor.size = (64, 128)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=100)
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=3)
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    return cfg


def _priors(cfg, prior_dir):
    if not osp.isdir(prior_dir):
        extract_sam_priors(cfg.train_dataloader.dataset.to_dict(), str(prior_dir),
                           StandInMaskGenerator(), dict(sam_type='stand_in'), progress=False)


def _hook(runner):
    return next(h for h in runner.hooks if type(h).__name__ == 'SAMDistillHook')


def _test_without_sam(cfg, checkpoint, prior_dir, work_dir, monkeypatch):
    """What tools/test.py does (runner from the config, checkpoint as load_from, test loop),
    with SAM unimportable, the priors deleted and every teacher/prior module made to fail."""
    def refuse(*args, **kwargs):
        raise AssertionError('a teacher / SAM-prior module ran at inference')

    shutil.rmtree(prior_dir, ignore_errors=True)
    monkeypatch.setitem(sys.modules, 'segment_anything', None)
    for cls in (SPFUnit, SGRLoss, SAMCascadeTeacher):
        monkeypatch.setattr(cls, 'forward', refuse)
    monkeypatch.setattr('mmseg_rass.sam.pooling.mask_average_pool', refuse)
    cfg = cfg.copy()
    cfg.work_dir, cfg.load_from = str(work_dir), checkpoint
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert 'mIoU' in metrics
    assert runner.model.teacher is None
    kinds = {type(m).__name__ for m in runner.model.modules()}
    assert not kinds & {'SPFUnit', 'SPFNeck', 'SGRLoss', 'SPDLoss', 'SAMCascadeTeacher',
                        'SAMDistillTeacher'}
    return metrics


def test_neck_teacher_follows_run_is_checkpointed_and_resumes_exactly(
        repo_root, demo_data_root, tmp_path, monkeypatch):
    prior_dir = tmp_path / 'priors'
    cfg = _tiny_cfg(repo_root, NECK, demo_data_root, prior_dir, tmp_path / 'a', max_iters=4)
    # dropout off (the model's random draws are not part of mmengine's resume)
    cfg.model.decode_head.dropout_ratio = 0.
    teacher = cfg.custom_hooks[0].teacher
    teacher.decode_head.dropout_ratio, teacher.neck.mask_drop = 0., 0.
    # the run accumulates 2 iterations per step and clips: the teacher must too
    cfg.optim_wrapper.update(accumulative_counts=2, clip_grad=dict(max_norm=0.5))
    _priors(cfg, prior_dir)
    runner = Runner.from_cfg(cfg.copy())
    runner.train()
    hook = _hook(runner)
    steps = {int(s['step']) for s in hook.teacher_optim.optimizer.state.values()}
    assert steps == {2}  # 4 iterations, accumulated by 2, like the student
    assert {int(s['step']) for s in runner.optim_wrapper.optimizer.state.values()} == {2}
    assert hook.teacher_optim.get_lr()['lr'] == runner.optim_wrapper.get_lr()['lr']  # schedule
    assert runner.message_hub.get_scalar('train/teacher_grad_norm').current() > 0
    runner_params = {id(p) for g in runner.optim_wrapper.optimizer.param_groups
                     for p in g['params']}
    assert not runner_params & {id(p) for p in hook.teacher.parameters()}
    assert runner.model.teacher is None  # detached after training
    final_student = {k: v.clone() for k, v in runner.model.state_dict().items()}
    final_teacher = {k: v.clone() for k, v in hook.teacher.state_dict().items()}

    # the checkpoint holds the teacher as plain tensors/dicts (weights_only-loadable)
    ckpt_path = osp.join(cfg.work_dir, 'iter_2.pth')
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=False)
    state = ckpt['sam_distill_teacher']
    assert set(state) == {'state_dict', 'optimizer', 'param_schedulers'}
    assert any(k.startswith('neck.units.0') for k in state['state_dict'])
    assert not any(k.startswith('sgr_loss.') for k in state['state_dict'])  # frozen VGG
    assert set(ckpt['state_dict']) == set(runner.model.state_dict())
    torch.save(state, tmp_path / 'teacher_state.pth')
    torch.load(tmp_path / 'teacher_state.pth', weights_only=True)

    # teacher_checkpoint: a run's checkpoint or the teacher's state dict, loaded strictly
    for source in (ckpt_path, str(tmp_path / 'teacher_state.pth')):
        hook = SAMDistillHook(cfg.custom_hooks[0].teacher, teacher_checkpoint=source)
        hook.teacher = MODELS.build(hook.teacher_cfg)
        hook._load_teacher_checkpoint()
        for k, v in state['state_dict'].items():
            assert torch.equal(hook.teacher.state_dict()[k], v), k
    torch.save({'state_dict': ckpt['state_dict']}, tmp_path / 'student_only.pth')
    hook.teacher_checkpoint = str(tmp_path / 'student_only.pth')
    with pytest.raises(RuntimeError, match=r'teacher_checkpoint .*student_only\.pth does not '
                       'match the configured teacher'):
        hook._load_teacher_checkpoint()

    # resume from iteration 2 = the uninterrupted run, student and teacher
    resumed = cfg.copy()
    resumed.work_dir, resumed.resume, resumed.load_from = str(tmp_path / 'b'), True, ckpt_path
    runner = Runner.from_cfg(resumed)
    runner.train()
    for k, v in runner.model.state_dict().items():
        assert torch.equal(v, final_student[k]), k
    for k, v in _hook(runner).teacher.state_dict().items():
        assert torch.equal(v, final_teacher[k]), k

    # a checkpoint without the teacher cannot be resumed unless that is explicitly accepted
    del ckpt['sam_distill_teacher']
    torch.save(ckpt, tmp_path / 'no_teacher.pth')
    resumed.work_dir, resumed.load_from = str(tmp_path / 'c'), str(tmp_path / 'no_teacher.pth')
    resumed.train_cfg.max_iters = 2  # nothing left to train: only before_train runs
    with pytest.raises(RuntimeError, match=r'iteration 2 holds no teacher state.*'
                       'resume_without_teacher=True'):
        Runner.from_cfg(resumed.copy()).train()
    resumed.custom_hooks[0].resume_without_teacher = True
    with pytest.warns(UserWarning, match='restarts from its initial weights'):
        Runner.from_cfg(resumed.copy()).train()

    _test_without_sam(cfg, ckpt_path, prior_dir, tmp_path / 'test', monkeypatch)


def test_cascade_trains_and_inference_has_no_sam_and_no_teacher(
        repo_root, demo_data_root, tmp_path, monkeypatch):
    prior_dir = tmp_path / 'priors'
    cfg = _tiny_cfg(repo_root, CASCADE, demo_data_root, prior_dir, tmp_path / 'work')
    _priors(cfg, prior_dir)
    runner = Runner.from_cfg(cfg.copy())
    fused = []
    orig = SPFUnit.forward
    monkeypatch.setattr(SPFUnit, 'forward',
                        lambda self, *a, **k: fused.append(1) or orig(self, *a, **k))
    runner.train()
    monkeypatch.setattr(SPFUnit, 'forward', orig)
    hook = _hook(runner)
    assert isinstance(hook.teacher, SAMCascadeTeacher)
    assert len(fused) == 2 * 4  # one SPF unit per building block, every iteration
    assert hook.teacher_optim.optimizer.state  # the second network trained
    checkpoint = osp.join(cfg.work_dir, 'iter_2.pth')
    assert any(k.startswith('spf_units.3') for k in
               torch.load(checkpoint, weights_only=False)['sam_distill_teacher']['state_dict'])
    _test_without_sam(cfg, checkpoint, prior_dir, tmp_path / 'test', monkeypatch)
