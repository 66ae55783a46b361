"""Policies on mmengine's runner and datasets: exact resume, validation on the BN statistics a
checkpoint holds, data checks when a dataset is built, label errors that name the file.

Each patch is installed once and reads its switch (:data:`mmseg_rass.compat.CHANGES`) at each
call, so a switch set later in the process takes effect.
"""
from .base import replace, switched_on

EXACT_RESUME_ENV = 'MMSEG_RASS_EXACT_RESUME'
BN_STATS_ENV = 'MMSEG_RASS_BN_STATS'
LABEL_ERRORS_ENV = 'MMSEG_RASS_LABEL_ERRORS'
DATA_CHECK_ENV = 'MMSEG_RASS_DATA_CHECK'  # fast | full | off, see datasets/data_check.py


def added_hooks(runner):
    """The hooks the plug-in adds to ``runner`` (with the switches now in force).

    - :class:`~mmseg_rass.hooks.RNGStateHook` (exact resume) unless the config lists one;
    - :class:`~mmseg_rass.hooks.RankZeroBNStatsHook` in distributed runs (validation during
      training uses rank 0's BN statistics, which are what its checkpoints hold).
    """
    from mmengine.dist import is_distributed

    from ..hooks.bn_stats_hook import RankZeroBNStatsHook
    from ..hooks.rng_state_hook import RNGStateHook
    wanted = []
    if switched_on(EXACT_RESUME_ENV):
        wanted.append(RNGStateHook)
    if switched_on(BN_STATS_ENV) and is_distributed():
        wanted.append(RankZeroBNStatsHook)
    return [hook() for hook in wanted
            if not any(isinstance(h, hook) for h in runner._hooks)]


def patch_runner_hooks():
    """Every runner gets :func:`added_hooks` after its own (``exact_resume``, ``bn_stats``)."""
    from mmengine.runner import Runner

    @replace(Runner, 'register_hooks')
    def register_hooks(original, self, default_hooks=None, custom_hooks=None):
        original(self, default_hooks, custom_hooks)
        for hook in added_hooks(self):
            self.register_hook(hook)


def patch_dataset_checks():
    """Files checked when a dataset is built; an unserialisable empty one named (``data_check``)."""
    from mmengine.dataset import BaseDataset

    @replace(BaseDataset, 'full_init')
    def full_init(original, self):
        if self._fully_initialized:
            return
        original(self)
        from ..datasets.data_check import check_at_build
        check_at_build(self)

    @replace(BaseDataset, '_serialize_data')
    def serialize_data(original, self):
        from ..datasets.data_check import data_check_mode, empty_dataset_error
        if not self.data_list and data_check_mode() != 'off':
            # mmengine fails here too, with numpy's 'need at least one array to concatenate'
            raise empty_dataset_error(self)
        return original(self)


def patch_label_loading():
    """mmseg's ``LoadAnnotations`` names the label it cannot read (``label_errors``)."""
    from mmseg.datasets.transforms import LoadAnnotations

    @replace(LoadAnnotations, '_load_seg_map')
    def load_seg_map(original, self, results):
        if not switched_on(LABEL_ERRORS_ENV):
            return original(self, results)
        path = results.get('seg_map_path')
        try:
            return original(self, results)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'label {path} does not exist: check data_root and the '
                                    "dataset's data_prefix and seg_map_suffix") from e
        except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for broken files
            raise ValueError(f'cannot decode label {path} ({type(e).__name__}: {e}): the file '
                             'is corrupt or not an image; replace it or remove it from the '
                             'split') from e
