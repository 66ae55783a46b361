"""RankZeroBNStatsHook: validation during distributed training on what checkpoints hold.

mmengine wraps the model in DDP with ``broadcast_buffers=False``: with plain (per-process) BN,
every process keeps its own running statistics, validation runs each process's share of the
images with that process's statistics, and a checkpoint holds rank 0's. The logged validation
score is then one that no checkpoint gives. ``import mmseg_rass`` adds this hook to every
distributed runner (see :mod:`mmseg_rass.compat`, switch ``MMSEG_RASS_BN_STATS``).
"""
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS
from torch.nn.modules.batchnorm import _NormBase


def norm_stats(model):
    """The running statistics (mean, var, batch count) of every normalisation layer."""
    return [buf for module in model.modules()
            if isinstance(module, _NormBase) and module.track_running_stats
            for buf in (module.running_mean, module.running_var, module.num_batches_tracked)
            if buf is not None]


@HOOKS.register_module()
class RankZeroBNStatsHook(Hook):
    """Before each validation, give every process rank 0's BN running statistics.

    Rank 0's model is unchanged, so the checkpoint saved at that iteration (rank 0's state)
    is exactly the model validated, and the logged score is the one ``tools/test.py`` gives
    for it. Training is unchanged: BN normalises with batch statistics in training, and the
    other processes' running statistics are never saved. Nothing happens in a single process
    or with SyncBN (whose statistics are equal everywhere already).
    """

    priority = 'LOW'  # after hooks that change buffers before validation (SyncBuffersHook)

    def __init__(self):
        self._logged = False

    def before_val_epoch(self, runner):
        if dist.get_world_size() < 2:
            return
        stats = norm_stats(runner.model)
        for buf in stats:
            dist.broadcast(buf, src=0)
        if stats and not self._logged:
            self._logged = True
            print_log(f"validation uses rank 0's running statistics of the normalisation "
                      f'layers ({len(stats)} tensors): the ones its checkpoints hold',
                      logger='current')
