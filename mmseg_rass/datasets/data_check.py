"""Check a segmentation dataset's files before anything trains or evaluates on them.

:func:`check_dataset` runs when a dataset is built (``import mmseg_rass`` installs it, see
:mod:`mmseg_rass.compat`; once per machine in distributed runs) and from
``tools/check_data.py``. It checks only what it can judge: the files that the dataset's own
loading transforms will read, the way they read them — images when the pipeline has
``LoadImageFromFile`` (or a subclass such as ``LoadImage``), labels when it has a
``LoadAnnotations`` with segmentation maps. Other loaders (GeoTIFF, medical volumes, arrays,
custom ones), an empty or absent pipeline and files on remote storage are left alone. All
problems are reported at once, each naming its file:

- a file that does not exist or is empty;
- a file the loader cannot read: not an image at all, or a PNG whose chunks are cut off or
  corrupt (a truncated download) — PNG integrity is verified without decoding;
- a label with colour channels (a label map holds one class index per pixel);
- a label whose size differs from its image's.

Mode ``'fast'`` (the default) reads image headers with PIL and verifies PNG files; a format PIL
does not know is decoded with the loader's own decoder (``imdecode_backend``). ``'full'`` decodes
every image and label with the loader's decoder (also catches undecodable JPEGs; slower).
``'off'`` skips the check. The mode comes from the ``MMSEG_RASS_DATA_CHECK`` environment
variable. A file that passed is not checked again in the same process while its size and
modification time are unchanged.
"""
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor

import mmcv
from mmcv.transforms import LoadAnnotations, LoadImageFromFile
from mmengine.logging import print_log
from PIL import Image, UnidentifiedImageError

from ..compat.runner import DATA_CHECK_ENV
from ..errors import UserError

MODES = ('fast', 'full', 'off')
MAX_LISTED = 20
LABEL_MODES = ('1', 'L', 'P', 'I', 'I;16', 'I;16L', 'I;16B', 'F')

_passed = {}  # (path, size, mtime_ns, mode, kind, flag, backend) -> (width, height) that passed


class DataCheckError(UserError, ValueError):
    """A dataset's files are missing, unreadable or inconsistent (the message lists them)."""


def data_check_mode():
    """The mode set by ``MMSEG_RASS_DATA_CHECK`` (default ``'fast'``)."""
    mode = os.environ.get(DATA_CHECK_ENV, 'fast').strip().lower() or 'fast'
    if mode not in MODES:
        raise ValueError(f'{DATA_CHECK_ENV}={mode!r} is not a data-check mode: use one of {MODES}')
    return mode


def _decode(data, kind, loader):
    """Decode ``data`` as ``loader`` does; (width, height) or ``ValueError``."""
    flag = loader.color_type if kind == 'image' else 'unchanged'
    try:
        array = mmcv.imfrombytes(data, flag=flag, backend=loader.imdecode_backend)
    except Exception as e:
        raise ValueError(f'is not a readable image ({loader.imdecode_backend} cannot decode it: '
                         f'{type(e).__name__}: {e})') from None
    if array is None:
        raise ValueError(f'is not a readable image ({loader.imdecode_backend} cannot decode it: '
                         'corrupt or not an image)')
    if kind == 'label' and array.ndim == 3 and array.shape[2] > 1:
        raise ValueError(f'has {array.shape[2]} channels: a label map has one class index '
                         'per pixel (is seg_map_suffix pointing at colour images?)')
    return array.shape[1], array.shape[0]


def _read_size(path, kind, mode, loader):
    """(width, height) of a file ``loader`` reads; raises ``ValueError`` saying what is wrong."""
    if not osp.isfile(path):
        raise ValueError('does not exist')
    stat = os.stat(path)
    if stat.st_size == 0:
        raise ValueError('is empty (0 bytes)')
    key = (path, stat.st_size, stat.st_mtime_ns, mode, kind,
           getattr(loader, 'color_type', None), loader.imdecode_backend)
    if key in _passed:
        return _passed[key]
    if mode == 'full':
        with open(path, 'rb') as f:
            size = _decode(f.read(), kind, loader)
    else:
        try:
            with Image.open(path) as im:
                size, image_mode, image_format = im.size, im.mode, im.format
                if image_format == 'PNG':
                    im.verify()  # all chunks present, CRCs right: catches truncated files
        except UnidentifiedImageError:  # a format PIL does not know: the loader's decoder
            with open(path, 'rb') as f:
                size, image_mode = _decode(f.read(), kind, loader), None
        except Exception as e:
            raise ValueError(f'is not a readable image ({type(e).__name__}: {e})') from None
        if kind == 'label' and image_mode is not None and image_mode not in LABEL_MODES:
            raise ValueError(f'has colour mode {image_mode}: a label map has one class index '
                             'per pixel (is seg_map_suffix pointing at colour images?)')
    _passed[key] = size
    return size


def _local(loader):
    """Whether ``loader`` reads local files (no remote ``backend_args``)."""
    backend = (getattr(loader, 'backend_args', None) or {}).get('backend', 'local')
    return backend == 'local'


def file_loaders(dataset):
    """The transforms of the dataset's pipeline that read its files: ``{'image': t, 'label': t}``.

    Only mmcv's ``LoadImageFromFile`` (and subclasses reading ``img_path``) and
    ``LoadAnnotations`` with ``with_seg`` (mmseg's is a subclass) are recognised; other loaders
    (mmseg's GeoTIFF and medical loaders, ``LoadImageFromNDArray``, custom ones) are not judged.
    """
    from mmseg.datasets.transforms import LoadImageFromNDArray
    found = {}
    for transform in getattr(getattr(dataset, 'pipeline', None), 'transforms', None) or []:
        if isinstance(transform, LoadImageFromNDArray) or not _local(transform):
            continue
        if isinstance(transform, LoadImageFromFile):
            found.setdefault('image', transform)
        elif isinstance(transform, LoadAnnotations) and getattr(transform, 'with_seg', False):
            found.setdefault('label', transform)
    return found


def _check_sample(info, mode, loaders):
    """The problems (strings naming the files) of one sample's files read by ``loaders``."""
    problems, sizes = [], {}
    for kind, key in (('image', 'img_path'), ('label', 'seg_map_path')):
        path = info.get(key)
        if not path or '://' in str(path) or kind not in loaders:
            continue  # not read by a loader the check knows, or remote storage
        try:
            sizes[kind] = _read_size(path, kind, mode, loaders[kind])
        except ValueError as e:
            problems.append(f'{kind} {path} {e}')
    if len(sizes) == 2 and sizes['image'] != sizes['label']:
        (iw, ih), (lw, lh) = sizes['image'], sizes['label']
        problems.append(f'label {info["seg_map_path"]} is {lw}x{lh} but its image '
                        f'{info["img_path"]} is {iw}x{ih}')
    return problems


def describe(dataset):
    """Where a dataset looks for its files (for error messages)."""
    parts = [f'data_root={getattr(dataset, "data_root", None)!r}']
    prefix = getattr(dataset, 'data_prefix', None)
    if prefix:
        parts.append(f'data_prefix={dict(prefix)}')
    for key in ('img_suffix', 'seg_map_suffix'):
        if hasattr(dataset, key):
            parts.append(f'{key}={getattr(dataset, key)!r}')
    if getattr(dataset, 'ann_file', None):
        parts.append(f'ann_file={dataset.ann_file!r}')
    return f'{type(dataset).__name__} ({", ".join(parts)})'


def empty_dataset_error(dataset):
    """The error for a dataset without samples, saying where it looked."""
    return DataCheckError(
        f'{describe(dataset)} has no samples: no image file matched. Check data_root, '
        'data_prefix and the suffixes in the config (or the ann_file, indices and filter_cfg), '
        'or generate/download the data.')


def check_at_build(dataset):
    """The check run when a dataset is built: its files, once per machine.

    An empty dataset is left to mmengine: with ``serialize_data=True`` (mmseg's default)
    mmengine cannot build it and the plug-in's error says where it looked; with
    ``serialize_data=False`` it is valid in mmengine and only a warning says so. In distributed
    runs only the process with ``LOCAL_RANK`` 0 reads the files (the others wait for it at the
    first collective operation and are ended with it if it fails).
    """
    if len(dataset) == 0:
        if data_check_mode() != 'off':
            print_log(f'{describe(dataset)} has no samples', logger='current', level=30)
    elif int(os.environ.get('LOCAL_RANK', '0')) == 0:
        check_dataset(dataset)


def check_dataset(dataset, mode=None):
    """Check the files of every sample; raise one :class:`DataCheckError` listing all problems.

    Args:
        dataset (BaseDataset): A fully initialised mmengine dataset. Only the files that its
            pipeline's loaders read (see :func:`file_loaders`) are checked.
        mode (str, optional): ``'fast'``, ``'full'`` or ``'off'``; default from
            :func:`data_check_mode`.

    Returns:
        int: The number of samples whose files were checked.
    """
    mode = mode or data_check_mode()
    if mode == 'off':
        return 0
    if len(dataset) == 0:
        raise empty_dataset_error(dataset)
    loaders = file_loaders(dataset)
    if not loaders:
        return 0
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        problems = [p for found in pool.map(lambda i: _check_sample(i, mode, loaders), infos)
                    for p in found]
    if problems:
        listed = '\n  '.join(problems[:MAX_LISTED])
        more = (f'\n  ... and {len(problems) - MAX_LISTED} more'
                if len(problems) > MAX_LISTED else '')
        raise DataCheckError(
            f'{describe(dataset)}: {len(problems)} problem(s) in {len(infos)} samples, found '
            f'before training/testing:\n  {listed}{more}\nFix or replace these files (or remove '
            f'them from the split). {DATA_CHECK_ENV}=off skips this check.')
    return len(infos)
