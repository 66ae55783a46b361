"""Policy: checkpoints load safely, and a bad one is named in one line.

A checkpoint is a pickle: loading it fully can run any code in it. mmengine 0.10.7 calls
``torch.load`` without ``weights_only`` (remote loaders through ``torch.hub``, which defaults
to full unpickling). Every mmengine checkpoint loader — local files (``load_from``,
``--resume``, ``tools/test.py``, ``init_cfg=dict(type='Pretrained')``), http(s), open-mmlab,
s3, ... — loads with ``weights_only=True`` here, whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
says, unless the user opts in (``--trust-checkpoint`` on the tools,
``MMSEG_RASS_TRUST_CHECKPOINTS=1``). A refused, missing, empty, truncated or foreign file
raises one :mod:`mmseg_rass.errors` error naming it. An http(s) checkpoint is downloaded into
a folder of its own per URL (two URLs with the same file name never share a cached file); the
plug-in's own downloads (:func:`download_checkpoint`) use the same file.
"""
import contextlib
import functools
import hashlib
import os
import os.path as osp
import pickle
import re
import warnings
from urllib.parse import urlparse

import torch

from ..errors import CheckpointNotFoundError, CheckpointReadError, UntrustedCheckpointError
from .base import patched, switched_on

TRUST_CHECKPOINTS_ENV = 'MMSEG_RASS_TRUST_CHECKPOINTS'
TRUST_CHECKPOINT_FLAG = '--trust-checkpoint'
URL_CACHE_ENV = 'MMSEG_RASS_URL_CACHE'


def trust_checkpoints():
    """Whether the user opted in to full unpickling (``MMSEG_RASS_TRUST_CHECKPOINTS=1``)."""
    return os.environ.get(TRUST_CHECKPOINTS_ENV, '').strip().lower() in ('1', 'true', 'yes')


def _refused(filename, error):
    """The error for a checkpoint that ``weights_only=True`` refuses: the file and the opt-in."""
    message = str(error)
    found = re.search(r'GLOBAL (\S+) was not an allowed global', message)
    found = found or re.search(r'unsupported GLOBAL (\S+)', message)
    what = (f'it refers to `{found.group(1)}`' if found else
            message.split('WeightsUnpickler error:')[-1].strip().splitlines()[0])
    return UntrustedCheckpointError(
        f'checkpoint {filename} holds Python objects that safe loading (torch.load with '
        f'weights_only=True) refuses: {what}. Loading it fully can run any code it contains. '
        f'Only if you trust the file (you made it, or it comes from a source you trust), '
        f'pass {TRUST_CHECKPOINT_FLAG} to the tool, or set {TRUST_CHECKPOINTS_ENV}=1 (any '
        'tool or script).')


def _damaged(filename, error, cached=None):
    """The error for a checkpoint torch cannot read (empty, truncated, not a torch file)."""
    path = cached or filename
    what = ('is empty (0 bytes)' if osp.isfile(path) and osp.getsize(path) == 0 else
            'is damaged or not a torch checkpoint')
    text = str(error).split('WeightsUnpickler error:')[-1].strip()
    first = text.splitlines()[0] if text else type(error).__name__
    where = f' (downloaded to {cached}: delete it to download again)' if cached else ''
    return CheckpointReadError(f'cannot read checkpoint {filename}{where}: it {what} ({first}); '
                               'pass a .pth file written by torch.save / tools/train.py')


# what torch's weights_only unpickler says when it refuses an object (not a damaged file)
_REFUSAL = re.compile(r'GLOBAL|allowed global|unrecognized function|Unsupported class')


def load_guarded(filename, load, cached=None):
    """Run ``load()``: refused or unreadable files become one error naming ``filename``."""
    try:
        return load()
    except pickle.UnpicklingError as e:
        if not trust_checkpoints() and _REFUSAL.search(str(e)):
            raise _refused(filename, e) from None
        raise _damaged(filename, e, cached) from None
    except (EOFError, RuntimeError, ValueError) as e:  # empty, truncated, foreign
        raise _damaged(filename, e, cached) from None


def load_local_checkpoint(filename, map_location=None, url=None):
    """Load a local checkpoint: ``weights_only=True`` unless the user trusts checkpoints.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As in :func:`torch.load`.
        url (str, optional): The http(s) URL ``filename`` was downloaded from
            (:func:`download_checkpoint`): errors name it, and the download to delete.

    Raises:
        CheckpointNotFoundError: The file does not exist.
        CheckpointReadError: The file is empty, truncated or not a torch file.
        UntrustedCheckpointError: The file needs full unpickling and the user did not opt in.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(
            f'checkpoint {filename} not found: pass the path (or http(s) URL) of a .pth file '
            'written by tools/train.py, or a model-zoo checkpoint')
    return load_guarded(url or filename, lambda: torch.load(
        filename, map_location=map_location, weights_only=not trust_checkpoints()),
        cached=filename if url else None)


def url_cache_dir(url):
    """The download folder of an http(s) checkpoint: one per URL, under torch hub's
    ``checkpoints`` folder (``$TORCH_HOME``)."""
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'mmseg_rass_urls', key)


def url_cache_file(url):
    """The downloaded file of an http(s) checkpoint: in :func:`url_cache_dir`, named as torch
    hub names it (the last part of the URL's path)."""
    return osp.join(url_cache_dir(url), osp.basename(urlparse(url).path))


def _undownloadable(url, error):
    return CheckpointReadError(f'checkpoint {url} cannot be downloaded ({error}): check the URL')


def download_checkpoint(url):
    """The local file of an http(s) checkpoint, :func:`url_cache_file`: downloaded on first use,
    then reused (the file mmengine's http loader reads here too).

    Raises:
        CheckpointReadError: The URL cannot be downloaded (not found, no network, ...).
    """
    path = url_cache_file(url)
    if not osp.isfile(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, path, progress=False)
        except (OSError, ValueError) as e:  # not found on the server, no network, bad URL
            raise _undownloadable(url, e) from None
    return path


def _safe_remote_loader(loader, http):
    """Wrap one of mmengine's remote loaders (http, open-mmlab, s3, ...) like the local one.

    They call ``torch.load`` without ``weights_only``; torch's own switches make that call
    ``weights_only=True`` (or ``False`` when the user trusts checkpoints) during the load.
    """

    @patched
    @functools.wraps(loader)
    def load(filename, *args, **kwargs):
        cached = None
        if http and len(args) < 2 and 'model_dir' not in kwargs and switched_on(URL_CACHE_ENV):
            kwargs['model_dir'] = url_cache_dir(filename)
            cached = url_cache_file(filename)
        with torch_load_policy():
            try:
                return load_guarded(filename, lambda: loader(filename, *args, **kwargs), cached)
            except OSError as e:  # not found on the server, no network, ...
                raise _undownloadable(filename, e) from None

    return load


@contextlib.contextmanager
def torch_load_policy():
    """Within the block, every ``torch.load`` (also third-party code's, which calls it without
    ``weights_only``) uses ``weights_only=True``, or full unpickling when the user trusts
    checkpoints: torch's own ``TORCH_FORCE_(NO_)WEIGHTS_ONLY_LOAD`` switches, restored after."""
    switch = ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' if trust_checkpoints() else
              'TORCH_FORCE_WEIGHTS_ONLY_LOAD')
    saved = {k: os.environ.pop(k, None) for k in ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD',
                                                  'TORCH_FORCE_WEIGHTS_ONLY_LOAD')}
    os.environ[switch] = '1'
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Environment variable TORCH_FORCE_NO')
            yield
    finally:
        os.environ.pop(switch)
        os.environ.update({k: v for k, v in saved.items() if v is not None})


def patch_checkpoint_loading():
    """Install the safe loaders in mmengine's ``CheckpointLoader`` (idempotent)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    schemes = mmengine_checkpoint.CheckpointLoader._schemes
    if not getattr(schemes.get(''), 'is_mmseg_rass_patch', False):

        @patched
        @functools.wraps(mmengine_checkpoint.load_from_local)  # the same name, in logs too
        def load_from_local(filename, map_location=None):
            return load_local_checkpoint(filename, map_location)

        schemes[''] = load_from_local
    for prefix, loader in list(schemes.items()):
        if prefix and not getattr(loader, 'is_mmseg_rass_patch', False):
            schemes[prefix] = _safe_remote_loader(loader, http=prefix.startswith('http'))
