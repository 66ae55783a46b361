"""RNGStateHook: exact resume, by saving and restoring the random number generators' states.

mmengine 0.10.7 re-seeds on ``--resume`` instead of restoring the generators, so everything
random after the checkpoint (dropout, random augmentation in the main process, stochastic
depth, ...) differs from an uninterrupted run. ``import mmseg_rass`` adds this hook to every
runner (see :mod:`mmseg_rass.compat`), so no config needs to list it.
"""
import random

import numpy as np
import torch
from mmengine import dist
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import HOOKS

CHECKPOINT_KEY = 'rng_state'


def get_rng_state():
    """This process's generator states (python, numpy, torch CPU and CUDA), tensors and ints.

    Returns:
        dict: Loadable with ``torch.load(weights_only=True)``.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return dict(
        python=dict(version=version, state=torch.tensor(python_state, dtype=torch.int64),
                    gauss_next=gauss_next),
        numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), gauss=float(gauss)),
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])


def set_rng_state(state):
    """Restore the states returned by :func:`get_rng_state`."""
    python = state['python']
    random.setstate((python['version'], tuple(python['state'].tolist()), python['gauss_next']))
    numpy = state['numpy']
    np.random.set_state((numpy['kind'], numpy['keys'].numpy().astype(np.uint32), numpy['pos'],
                         numpy['has_gauss'], numpy['gauss']))
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        if len(state['cuda']) != torch.cuda.device_count():
            print_log(f'the checkpoint holds CUDA generator states of {len(state["cuda"])} '
                      f'devices, this process sees {torch.cuda.device_count()}: CUDA states '
                      'are not restored (resume not exact)', logger='current', level=30)
        else:
            torch.cuda.set_rng_state_all(state['cuda'])


class _RestoreAfterSkip:
    """Wraps the train loop's data iterator: restores the states once ``skip`` batches are out.

    On resume, ``IterBasedTrainLoop`` draws (and discards) the batches already trained on, so
    that the sampler and the dataloader workers reach the same point as an uninterrupted run;
    in the main process that replay also draws random numbers (augmentation when
    ``num_workers=0``). The states are therefore restored after the replay, right before the
    first new batch is drawn.
    """

    def __init__(self, loop, skip, restore):
        self.loop, self.inner, self.skip, self.restore = loop, loop.dataloader_iterator, skip, restore

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0:
            self.restore()
            self.loop.dataloader_iterator = self.inner
        else:
            self.skip -= 1
        return next(self.inner)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the random generators' states in checkpoints and restore them on resume.

    - Saving: the states of every process (gathered in distributed training) at the moment the
      checkpoint is written go under ``checkpoint['rng_state']`` (plain tensors and numbers,
      loadable with ``weights_only=True``).
    - Resuming (``--resume``, not ``load_from``): each process gets its own states back, for an
      iteration-based loop right after mmengine has replayed the batches already trained on,
      for an epoch-based loop before the next epoch starts. Together with mmengine's replay of
      the sampler and the dataloader workers' seeds, a resumed run equals an uninterrupted one
      bit for bit when the config fixes ``randomness.seed`` and runs on the same number of
      processes; otherwise a warning says why it cannot be exact.
    - Validation during training runs between a save and a restore of the states, so how often
      one validates does not change the training (and a checkpoint saved after validation is
      resumed at the same point).

    Limits: generators that live outside python/numpy/torch's global ones are not covered;
    persistent dataloader workers of an epoch-based loop are re-seeded on resume (mmengine's
    ``worker_init_fn``), not restored.
    """

    priority = 85  # after every hook but CheckpointHook (VERY_LOW = 90) in after_train_iter

    def __init__(self):
        self._gathered = None  # (iter, [states per rank]) gathered for a save in distributed
        self._val_states = None  # the training states while validation runs
        self._loaded = None  # (rng_state, meta) of the last checkpoint loaded
        self._epoch_state = None  # the states to restore before the next epoch

    # saving
    def _all_states(self, runner):
        states = self._val_states or get_rng_state()
        if dist.get_world_size() == 1:
            return [states]
        if self._gathered is not None and self._gathered[0] == runner.iter:
            return self._gathered[1]
        return [states]  # only rank 0 runs before_save_checkpoint: other ranks unknown

    def _gather_if_saving(self, runner, by_epoch):
        if dist.get_world_size() == 1:
            return
        due = False
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and hook.by_epoch == by_epoch:
                if by_epoch:
                    due |= hook.every_n_epochs(runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_epoch(runner))
                else:
                    due |= hook.every_n_train_iters(runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_iter(runner))
        if due:
            self._gathered = (runner.iter, dist.all_gather_object(get_rng_state()))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner):
        self._gather_if_saving(runner, by_epoch=True)

    def before_val(self, runner):
        self._val_states = get_rng_state()
        if dist.get_world_size() > 1:  # a best checkpoint may be saved during validation
            self._gathered = (runner.iter, dist.all_gather_object(self._val_states))

    def after_val(self, runner):
        if self._val_states is not None:
            set_rng_state(self._val_states)
            self._val_states = None

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint[CHECKPOINT_KEY] = dict(ranks=self._all_states(runner))

    # resuming
    def after_load_checkpoint(self, runner, checkpoint):
        self._loaded = (checkpoint.get(CHECKPOINT_KEY), checkpoint.get('meta', {}))

    def before_train(self, runner):
        (saved, meta), self._loaded = self._loaded or (None, {}), None
        resuming = runner.iter > 0 or runner.epoch > 0
        if not resuming or (meta.get('iter'), meta.get('epoch')) != (runner.iter, runner.epoch):
            return  # a fresh run, or load_from (weights only)
        problem = None
        if saved is None:
            problem = 'the checkpoint holds no random generator states'
        elif len(saved['ranks']) != dist.get_world_size():
            problem = (f'the checkpoint holds the states of {len(saved["ranks"])} processes, '
                       f'this run has {dist.get_world_size()}')
        elif runner.cfg.get('randomness', {}).get('seed') is None:
            problem = ('the config sets no randomness.seed, so the sampler and the dataloader '
                       'workers got a new random seed')
        if problem is not None:
            print_log(f'resume is not exact: {problem}', logger='current', level=30)
            if saved is None or len(saved['ranks']) != dist.get_world_size():
                return
        state = saved['ranks'][dist.get_rank()]
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreAfterSkip(loop, runner.iter,
                                                         lambda: set_rng_state(state))
        else:
            self._epoch_state = state

    def before_train_epoch(self, runner):
        if self._epoch_state is not None:
            set_rng_state(self._epoch_state)
            self._epoch_state = None
