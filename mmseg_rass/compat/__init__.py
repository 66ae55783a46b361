"""Everything ``import mmseg_rass`` changes in torch, mmcv, mmengine and mmseg, in one registry.

:data:`CHANGES` lists each change with its kind, its switch and when the switch is read; the
table in ``docs/reliability.md`` is the same list, and ``tests/test_compat.py`` tests every switch.

- **Shims** (:mod:`.shims`) exist because mmseg 1.2.2, mmengine 0.10.7 and mmcv 2.1.0 predate
  the installed torch and setuptools: without them mmseg does not import, ``mmseg::`` configs
  do not resolve, or mmengine's own checkpoints do not load. Switched at import.
- **Policies** (:mod:`.checkpoints`, :mod:`.distributed`, :mod:`.runner`) are the plug-in's own
  choices for runs one can trust. Switched at each call.

:func:`apply` (run by ``import mmseg_rass``) installs the shims that must precede mmseg's import
first, then the rest; every patch is idempotent and acts only where it can judge.
"""
from collections import namedtuple

from ..errors import (CheckpointNotFoundError, CheckpointReadError,  # noqa: F401
                      UntrustedCheckpointError)
from . import checkpoints, distributed, runner, shims
from .base import switched_on
from .checkpoints import (TRUST_CHECKPOINT_FLAG, TRUST_CHECKPOINTS_ENV,  # noqa: F401
                          load_local_checkpoint, trust_checkpoints)
from .distributed import CPUSyncBatchNormFunction  # noqa: F401
from .shims import (MissingCompiledOpError, checkpoint_safe_globals,  # noqa: F401
                    has_compiled_ops)

Change = namedtuple('Change', 'name kind switch off read apply summary')
"""One behaviour change: ``switch`` is the environment variable, ``off`` its value that turns
the change off, ``read`` when it is read (``import`` or ``call``)."""

CHANGES = (
    Change('pkg_resources', 'shim', 'MMSEG_RASS_PKG_RESOURCES', 'off', 'import',
           shims.patch_pkg_resources,
           'pkg_resources stand-in when setuptools >= 82 removed it (mmseg:: configs); its '
           'deprecation warning silenced'),
    Change('mmcv_ext', 'shim', 'MMSEG_RASS_MMCV_EXT', 'off', 'import', shims.patch_mmcv_ext,
           'stand-in for mmcv._ext when mmcv has no compiled ops (mmseg imports mmcv.ops '
           'unguarded); a compiled op raises MissingCompiledOpError naming it'),
    Change('checkpoint_globals', 'shim', 'MMSEG_RASS_CHECKPOINT_GLOBALS', 'off', 'import',
           shims.register_checkpoint_globals,
           "mmengine's checkpoint contents (message hub, numpy values, OneCycle's annealing "
           "function) are torch safe globals: torch >= 2.6's weights_only=True default loads "
           "mmengine's own checkpoints"),
    Change('safe_loading', 'policy', TRUST_CHECKPOINTS_ENV, '1', 'call',
           checkpoints.patch_checkpoint_loading,
           'every mmengine checkpoint loader uses weights_only=True; refused, missing, empty or '
           'damaged files raise one error naming them'),
    Change('url_cache', 'policy', checkpoints.URL_CACHE_ENV, 'off', 'call', None,
           'an http(s) checkpoint is downloaded into a folder of its own per URL (torch hub '
           'keeps one file per file name)'),
    Change('cpu_distributed', 'policy', distributed.CPU_DISTRIBUTED_ENV, 'off', 'call',
           distributed.patch_cpu_distributed,
           'without a GPU: gloo instead of nccl, no set_device, no DDP device_ids, SyncBN '
           'all-reduced on CPU processes, the gloo group destroyed at the end of a tool'),
    Change('exact_resume', 'policy', runner.EXACT_RESUME_ENV, 'off', 'call',
           runner.patch_runner_hooks,
           'RNGStateHook in every runner: random generator states saved in checkpoints and '
           'restored on --resume; validation does not consume training randomness'),
    Change('bn_stats', 'policy', runner.BN_STATS_ENV, 'off', 'call', None,
           "RankZeroBNStatsHook in distributed runners: validation uses rank 0's BN "
           'statistics, which are what checkpoints hold'),
    Change('data_check', 'policy', runner.DATA_CHECK_ENV, 'off', 'call',
           runner.patch_dataset_checks,
           "files a dataset's own loading transforms will read are checked when it is built "
           '(fast or full); an empty serialised dataset names where it looked'),
    Change('label_errors', 'policy', runner.LABEL_ERRORS_ENV, 'off', 'call',
           runner.patch_label_loading,
           "mmseg's LoadAnnotations names the label file it cannot read"),
)


def enabled(name):
    """Whether the change ``name`` of :data:`CHANGES` is on now."""
    change = next(c for c in CHANGES if c.name == name)
    if change.switch == TRUST_CHECKPOINTS_ENV:  # an opt-in (=1) turns safe loading off
        return not trust_checkpoints()
    return switched_on(change.switch)


def apply():
    """Install every change (shims whose switch is off are skipped); idempotent."""
    for change in CHANGES:
        if change.apply is not None and (change.read == 'call' or enabled(change.name)):
            change.apply()
