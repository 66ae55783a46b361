"""Run one of mmseg's own scripts (shipped in the mmseg wheel under ``mmseg/.mim/tools``)
after applying :mod:`mmseg_rass.compat`."""
import os.path as osp
import runpy
import sys

from . import compat


def mmseg_tool_path(name):
    """Path of ``mmseg/.mim/tools/<name>`` in the installed mmseg package."""
    import importlib.util
    spec = importlib.util.find_spec('mmseg')
    if spec is None:
        raise ModuleNotFoundError('mmsegmentation is not installed: run `bash tools/setup_env.sh`')
    path = osp.join(osp.dirname(spec.origin), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found: the installed mmsegmentation does not ship '
                                'its tools; reinstall it with `pip install mmsegmentation==1.2.2`')
    return path


def run_mmseg_tool(name, argv=None):
    """Apply compat and run mmseg's ``tools/<name>`` as ``__main__`` with ``argv``.

    Args:
        name (str): script name, e.g. ``'train.py'``.
        argv (list[str], optional): command-line arguments; default ``sys.argv[1:]``.
    """
    compat.apply()
    import mmseg_rass  # noqa: F401  (registers components even without custom_imports)
    path = mmseg_tool_path(name)
    sys.argv = [path, *(sys.argv[1:] if argv is None else argv)]
    _check_config_arg(name, sys.argv[1:])
    runpy.run_path(path, run_name='__main__')


def _check_config_arg(name, argv):
    """Fail early, naming the file, when the config or checkpoint argument does not exist."""
    positional = [a for a in argv if not a.startswith('-')][:2 if name == 'test.py' else 1]
    kinds = ('config', 'checkpoint')
    for kind, path in zip(kinds, positional):
        if not osp.isfile(path):
            raise SystemExit(f'error: {kind} file {path} does not exist; pass an existing '
                             f'{kind} path (see `python tools/{name} --help`)')
