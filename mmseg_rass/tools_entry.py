"""Run one of mmseg's own scripts (shipped in the mmseg wheel under ``mmseg/.mim/tools``).

Importing this module imports :mod:`mmseg_rass`, which has already applied
:mod:`mmseg_rass.compat` and registered every component (even without ``custom_imports``).
"""
import itertools
import os.path as osp
import runpy
import sys

import mmseg


def mmseg_tool_path(name):
    """Path of ``mmseg/.mim/tools/<name>`` in the installed mmseg package."""
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found: the installed mmsegmentation does not ship '
                                'its tools; reinstall it with `pip install mmsegmentation==1.2.2`')
    return path


def run_mmseg_tool(name, argv=None):
    """Run mmseg's ``tools/<name>`` as ``__main__`` with ``argv`` (compat already applied).

    Args:
        name (str): script name, e.g. ``'train.py'``.
        argv (list[str], optional): command-line arguments; default ``sys.argv[1:]``.
    """
    path = mmseg_tool_path(name)
    sys.argv = [path, *(sys.argv[1:] if argv is None else argv)]
    _check_config_arg(name, sys.argv[1:])
    runpy.run_path(path, run_name='__main__')


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
