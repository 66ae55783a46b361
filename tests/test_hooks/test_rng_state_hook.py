"""Exact resume: 2 iterations straight == 1 + interruption + --resume + 1, bit for bit.

The shipped demo configs keep dropout and random augmentation on. In the FPN runs, the
uninterrupted run also validates after the first iteration (validation must not disturb the
training's random streams).
"""
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmseg_rass.hooks import RNGStateHook


class Interrupt(Exception):
    """Stands for the process being killed right after a checkpoint was written."""


class KillAfter(Hook):
    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, iters):
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iters:
            raise Interrupt


def build(config, data_root, work_dir, num_workers, name, resume_from=None, val_interval=1,
          save=False):
    """A runner of ``config`` for 2 iterations of batch 2; checkpoint after 1 if ``save``."""
    cfg = Config.fromfile(config)
    for split in ('train', 'val'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = str(data_root)
        loader.dataset.serialize_data = False  # its gc.collect() is slow in a big test process
        loader.num_workers = num_workers
        loader.persistent_workers = num_workers > 0
    cfg.val_dataloader.dataset.indices = 1  # one validation image is enough to compare mIoU
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = val_interval
    cfg.default_hooks.checkpoint.update(interval=1 if save else 100, save_last=save)
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name  # runners made in the same second must not share a message hub
    cfg.resume = resume_from is not None
    cfg.load_from = resume_from and str(resume_from)
    return Runner.from_cfg(cfg)


def train(runner):
    assert sum(isinstance(h, RNGStateHook) for h in runner.hooks) == 1  # added by compat
    runner.train()
    miou = runner.message_hub.get_scalar('val/mIoU').current()
    return {k: v.clone() for k, v in runner.model.state_dict().items()}, miou


def assert_same(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:3]}'


def resume_runs(config, data_root, tmp_path, num_workers, val_interval, without_hook=False):
    """(straight weights, mIoU), (resumed weights, mIoU)[, weights of a plain mmengine resume]."""
    straight = train(build(config, data_root, tmp_path / 'straight', num_workers, 'straight',
                           val_interval=val_interval))
    first = build(config, data_root, tmp_path / 'resumed', num_workers, 'first',
                  val_interval=val_interval, save=True)
    first.register_hook(KillAfter(1))
    with pytest.raises(Interrupt):
        first.train()
    checkpoint = tmp_path / 'resumed' / 'iter_1.pth'
    resumed = build(config, data_root, tmp_path / 'resumed', num_workers, 'second', checkpoint,
                    val_interval=val_interval)
    results = [straight, train(resumed)]
    if without_hook:
        plain = build(config, data_root, tmp_path / 'plain', num_workers, 'plain', checkpoint,
                      val_interval=val_interval)
        plain._hooks = [h for h in plain._hooks if not isinstance(h, RNGStateHook)]
        plain.train()
        results.append(plain.model.state_dict())
    return results


def test_baseline_fpn_resume_is_exact(repo_root, demo_data_root, tmp_path):
    # main-process augmentation (num_workers=0): the replayed batches draw random numbers too;
    # the straight run validates after iteration 1, the interrupted one does not
    (straight, miou), (resumed, miou_resumed), plain = resume_runs(
        f'{repo_root}/configs/baseline/fpn_r18_demo_cityscapes.py', demo_data_root, tmp_path,
        num_workers=0, val_interval=1, without_hook=True)
    assert_same(straight, resumed)
    assert miou == miou_resumed
    # mmengine alone re-seeds on resume: dropout and augmentation differ from the straight run
    assert any(not torch.equal(straight[k], plain[k]) for k in straight)


def test_rass_tiny_demo_resume_is_exact(repo_root, demo_data_root, tmp_path):
    # the shipped dataloader settings: 2 persistent workers (Degrade runs in them)
    (straight, miou), (resumed, miou_resumed) = resume_runs(
        f'{repo_root}/configs/rass/rass_tiny_demo.py', demo_data_root, tmp_path, num_workers=2,
        val_interval=2)
    assert_same(straight, resumed)
    assert miou == miou_resumed
