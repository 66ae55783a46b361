"""Run one of mmseg's own scripts (shipped in the mmseg wheel under ``mmseg/.mim/tools``).

Importing this module imports :mod:`mmseg_rass`, which has already applied
:mod:`mmseg_rass.compat` and registered every component (even without ``custom_imports``).
The plug-in adds one option to mmseg's command line, ``--trust-checkpoint``.
"""
import itertools
import os
import os.path as osp
import runpy
import sys

import mmseg

from mmseg_rass.compat import (TRUST_CHECKPOINT_FLAG, TRUST_CHECKPOINTS_ENV,
                               UntrustedCheckpointError)
from mmseg_rass.datasets.data_check import DataCheckError

TRUST_CHECKPOINT_HELP = (
    f'{TRUST_CHECKPOINT_FLAG}: load checkpoints with full unpickling (torch.load '
    'weights_only=False), which can run any code a checkpoint contains; only for files you '
    f'trust. Without it (or {TRUST_CHECKPOINTS_ENV}=1) checkpoints load with weights_only=True.')


def mmseg_tool_path(name):
    """Path of ``mmseg/.mim/tools/<name>`` in the installed mmseg package."""
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found: the installed mmsegmentation does not ship '
                                'its tools; reinstall it with `pip install mmsegmentation==1.2.2`')
    return path


def add_trust_checkpoint_argument(parser):
    """Add ``--trust-checkpoint`` to an argparse parser (use :func:`apply_trust_checkpoint`)."""
    parser.add_argument(TRUST_CHECKPOINT_FLAG, action='store_true',
                        help=TRUST_CHECKPOINT_HELP.split(': ', 1)[1])


def apply_trust_checkpoint(trust):
    """Opt in to full unpickling of checkpoints in this process (and its children) if ``trust``."""
    if trust:
        os.environ[TRUST_CHECKPOINTS_ENV] = '1'
        print(f'{TRUST_CHECKPOINT_FLAG}: checkpoints are loaded with full unpickling '
              '(weights_only=False)', file=sys.stderr)


def run_mmseg_tool(name, argv=None):
    """Run mmseg's ``tools/<name>`` as ``__main__`` with ``argv`` (compat already applied).

    ``--trust-checkpoint`` is taken out of ``argv`` (see :func:`apply_trust_checkpoint`); an
    untrusted checkpoint or bad data ends the tool with one error naming the files.

    Args:
        name (str): script name, e.g. ``'train.py'``.
        argv (list[str], optional): command-line arguments; default ``sys.argv[1:]``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    apply_trust_checkpoint(TRUST_CHECKPOINT_FLAG in argv)
    argv = [a for a in argv if a != TRUST_CHECKPOINT_FLAG]
    if '-h' in argv or '--help' in argv:
        print(f'mmseg_rass adds {TRUST_CHECKPOINT_HELP}\n')
    path = mmseg_tool_path(name)
    sys.argv = [path, *argv]
    _check_config_arg(name, argv)
    try:
        runpy.run_path(path, run_name='__main__')
    except (UntrustedCheckpointError, DataCheckError) as e:
        raise SystemExit(f'error: {e}') from None


def _check_config_arg(name, argv):
    """Fail early, naming the file, when the config or checkpoint argument does not exist.

    Only the leading positional arguments are checked (an option's value, as in
    ``--work-dir DIR``, is not a positional); anything else is left to mmseg's own parser.
    """
    positional = list(itertools.takewhile(lambda a: not a.startswith('-'), argv))
    positional = positional[:2 if name == 'test.py' else 1]
    kinds = ('config', 'checkpoint')
    for kind, path in zip(kinds, positional):
        if not osp.isfile(path):
            raise SystemExit(f'error: {kind} file {path} does not exist; pass an existing '
                             f'{kind} path (see `python tools/{name} --help`)')
