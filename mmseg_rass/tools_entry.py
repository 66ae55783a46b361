"""What every tool shares: running mmseg's own scripts, ``--trust-checkpoint``, and ending on a
user's error with one line.

Importing this module imports :mod:`mmseg_rass`, which has already applied
:mod:`mmseg_rass.compat` and registered every component (even without ``custom_imports``).
:func:`run_mmseg_tool` runs a script shipped in the mmseg wheel (``mmseg/.mim/tools``) with one
more option, ``--trust-checkpoint``; the project's own tools end with ``run_cli(main)``.
"""
import contextlib
import itertools
import os
import os.path as osp
import runpy
import sys

import mmseg

from mmseg_rass.compat import TRUST_CHECKPOINT_FLAG, TRUST_CHECKPOINTS_ENV
from mmseg_rass.compat.distributed import destroy_gloo_process_group
from mmseg_rass.errors import UserError

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


def one_line(error):
    """``error: <message>`` for the user: the message's lines joined (a data-check error keeps
    its list of files, one per line)."""
    from mmseg_rass.datasets.data_check import DataCheckError
    text = str(error).strip()
    return f'error: {text if isinstance(error, DataCheckError) else " ".join(text.split())}'


def run_cli(main, argv=None):
    """Run a tool's ``main(argv)``; a :class:`~mmseg_rass.errors.UserError` (a missing, refused
    or damaged checkpoint, bad data, a bad parameter, ...) ends the tool with ``error: <message>``
    on stderr and exit status 1, without a traceback. A distributed CPU run's process group is
    destroyed at the end (:func:`mmseg_rass.compat.distributed.destroy_gloo_process_group`)."""
    try:
        return main(argv)
    except UserError as e:
        raise SystemExit(one_line(e)) from None
    finally:
        destroy_gloo_process_group()


@contextlib.contextmanager
def usage_errors(parser):
    """A :class:`~mmseg_rass.errors.UserError` raised in the block ends the tool as argparse ends
    it on a bad option: ``<prog>: error: <message>`` on stderr, exit status 2 (the tools whose
    errors are mostly about their arguments: benchmarks, config writers)."""
    try:
        yield
    except UserError as e:
        parser.exit(2, f'{parser.prog}: {one_line(e)}\n')


def is_url(path):
    """Whether ``path`` is a checkpoint URL that mmengine's ``CheckpointLoader`` reads
    (``http(s)://``, ``open-mmlab://``, ``s3://``, ...) rather than a local file."""
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader._get_checkpoint_loader(path) is not CheckpointLoader._schemes['']


def run_mmseg_tool(name, argv=None):
    """Run mmseg's ``tools/<name>`` as ``__main__`` with ``argv`` (compat already applied).

    ``--trust-checkpoint`` is taken out of ``argv`` (see :func:`apply_trust_checkpoint`); a
    user's error ends the tool in one line (:func:`run_cli`).

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
    run_cli(lambda _: runpy.run_path(path, run_name='__main__'))


def _check_config_arg(name, argv):
    """Fail early, naming the file, when the config or local checkpoint does not exist.

    Only the leading positional arguments are checked (an option's value, as in
    ``--work-dir DIR``, is not a positional); a checkpoint URL is left to mmengine's loader, and
    anything else to mmseg's own parser.
    """
    positional = list(itertools.takewhile(lambda a: not a.startswith('-'), argv))
    positional = positional[:2 if name == 'test.py' else 1]
    kinds = ('config', 'checkpoint')
    for kind, path in zip(kinds, positional):
        if not osp.isfile(path) and not (kind == 'checkpoint' and is_url(path)):
            raise SystemExit(f'error: {kind} file {path} does not exist; pass an existing '
                             f'{kind} path (see `python tools/{name} --help`)')
