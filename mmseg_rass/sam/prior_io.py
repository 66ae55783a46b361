"""SAM prior cache: per-image bit-packed mask files plus a manifest.

Layout of a prior folder (written by ``tools/extract_sam_priors.py``)::

    PRIOR_DIR/manifest.json                     # SAM type, checkpoint hash, degradation, K,
                                                # prior source, ... and the empty-prior list
    PRIOR_DIR/<image path relative to img_root, suffix replaced by .npz>

Each ``.npz`` holds ``bits`` (``np.packbits`` of the (K, H, W) boolean masks), ``shape``
(K, H, W), ``valid`` (K,) booleans (False for empty slots when SAM found fewer than K masks),
``areas`` (K,) pixel counts and ``records``, three strings: ``bits_sha256`` (detects a damaged
file), ``image_sha256`` (SHA-256 of the source image file's bytes) and ``manifest_key`` (the
:func:`manifest_key` of the settings it was made with) — the last two make a stale prior
detectable. Masks are sorted by decreasing area.
"""
import contextlib
import hashlib
import json
import os
import os.path as osp
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, InputFileError, InputNotFoundError

PRIOR_FORMAT = 'mmseg_rass.sam_priors.v2'
MANIFEST_NAME = 'manifest.json'
# Manifest entries that say where things are, what they are called or what happened, not how
# priors were made (the SAM checkpoint is keyed by its SHA-256, not its file name).
NON_KEY_FIELDS = ('img_root', 'checkpoint', 'key', 'empty_priors')
RECORDS = ('bits_sha256', 'image_sha256', 'manifest_key')
REEXTRACT_HINT = ('re-run tools/extract_sam_priors.py with the same config and --out (it '
                  're-extracts stale or broken files)')


def _sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


class SAMPrior(NamedTuple):
    """One image's cached priors.

    Attributes:
        masks (np.ndarray): (K, H, W) bool, sorted by decreasing area.
        valid (np.ndarray): (K,) bool, False for empty slots.
        image_sha256 (str): SHA-256 of the source image file the masks were made from.
        manifest_key (str): :func:`manifest_key` of the settings used.
    """
    masks: np.ndarray
    valid: np.ndarray
    image_sha256: str
    manifest_key: str


def select_largest_masks(records, num_masks, image_shape):
    """Keep the ``num_masks`` largest masks of a SAM automatic-mask-generator output.

    Args:
        records (list[dict]): output of ``SamAutomaticMaskGenerator.generate`` (dicts with a
            boolean (H, W) ``segmentation`` and an ``area``), in any order.
        num_masks (int): K, the number of slots kept.
        image_shape (tuple[int, int]): (H, W) of the image the masks were made on.

    Returns:
        tuple[np.ndarray, np.ndarray]: masks (K, H, W) bool sorted by decreasing area, with
        all-False padding slots, and valid (K,) bool.
    """
    h, w = image_shape
    masks = np.zeros((num_masks, h, w), dtype=bool)
    valid = np.zeros(num_masks, dtype=bool)
    order = sorted(range(len(records)), key=lambda i: -int(records[i]['area']))
    for slot, i in enumerate(order[:num_masks]):
        seg = np.asarray(records[i]['segmentation'], dtype=bool)
        if seg.shape != (h, w):
            raise ValueError(f'SAM mask {i} has shape {seg.shape}, expected the image shape '
                             f'{(h, w)}: masks must come from the same image (not RLE-encoded)')
        masks[slot] = seg
        valid[slot] = True
    return masks, valid


def save_sam_prior(path, masks, valid, image_sha256, manifest_key):
    """Write one image's priors atomically (a killed run never leaves a partial file).

    Args:
        path (str): destination ``.npz`` file; folders are created.
        masks (np.ndarray): (K, H, W) bool masks.
        valid (np.ndarray): (K,) bool validity.
        image_sha256 (str): SHA-256 of the source image file (:func:`file_sha256`).
        manifest_key (str): :func:`manifest_key` of the prior folder's manifest.
    """
    masks = np.asarray(masks, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if masks.ndim != 3 or valid.shape != masks.shape[:1]:
        raise ValueError(f'save_sam_prior: masks must be (K, H, W) and valid (K,), got '
                         f'{masks.shape} and {valid.shape}')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}.npz'
    bits = np.packbits(masks.reshape(-1))
    np.savez_compressed(tmp, bits=bits, shape=np.asarray(masks.shape, dtype=np.int64),
                        valid=valid,
                        areas=masks.reshape(masks.shape[0], -1).sum(1).astype(np.int64),
                        records=np.asarray([_sha256(bits), str(image_sha256),
                                            str(manifest_key)]))
    os.replace(tmp, path)


def load_sam_prior(path):
    """Read and check one image's priors.

    Args:
        path (str): a ``.npz`` file written by :func:`save_sam_prior`.

    Returns:
        SAMPrior: masks, valid flags and the two records.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, truncated, corrupt, inconsistent or of an older format;
            the message names the file and what to do.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(path)
    try:
        with np.load(path) as data:
            names = set(data.files)
            if not {'bits', 'shape', 'valid'} <= names:
                raise KeyError(f'has entries {sorted(names)}, not bits/shape/valid')
            shape = tuple(int(s) for s in data['shape'])
            bits, valid = data['bits'], data['valid'].astype(bool)
            records = dict(zip(RECORDS, (str(r) for r in data['records']))) \
                if 'records' in names else {}
    except Exception as e:  # zero-byte/truncated zip, bad zlib stream, foreign npz, ...
        raise ValueError(f'SAM prior file {path} is unreadable or not written by '
                         f'tools/extract_sam_priors.py ({type(e).__name__}: {e}): delete it or '
                         f'{REEXTRACT_HINT}') from e
    if len(records) != len(RECORDS):
        raise ValueError(f'SAM prior file {path} has no image/manifest record (written by an '
                         f'older version): {REEXTRACT_HINT}')
    count = int(np.prod(shape)) if shape else 0
    if len(shape) != 3 or min(shape) < 0 or valid.shape != shape[:1] \
            or bits.dtype != np.uint8 or bits.size != (count + 7) // 8:
        raise ValueError(f'SAM prior file {path} is inconsistent: shape {shape}, valid '
                         f'{valid.shape}, {bits.size} packed bytes for {count} mask pixels '
                         f'(expected {(count + 7) // 8}); delete it or {REEXTRACT_HINT}')
    if _sha256(bits) != records['bits_sha256']:
        raise ValueError(f'SAM prior file {path} is damaged (its mask bits do not match their '
                         f'checksum): delete it or {REEXTRACT_HINT}')
    masks = np.unpackbits(bits, count=count).reshape(shape).astype(bool)
    return SAMPrior(masks, valid, records['image_sha256'], records['manifest_key'])


def prior_path(prior_dir, img_path, img_root):
    """Prior file of an image: its path relative to ``img_root`` under ``prior_dir``, ``.npz``.

    Args:
        prior_dir (str): the prior folder.
        img_path (str): the image file.
        img_root (str): the folder image paths are taken relative to (the dataset's
            ``data_root``).
    """
    rel = osp.relpath(osp.abspath(img_path), osp.abspath(img_root))
    if rel.startswith('..'):
        raise ConfigError(f'image {img_path} is not under img_root {img_root}: set img_root '
                          "(LoadSAMPriors) / the dataset's data_root to a folder containing it")
    return osp.join(prior_dir, osp.splitext(rel)[0] + '.npz')


def file_sha256(path, chunk=1 << 24):
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def manifest_key(manifest):
    """SHA-256 of the settings of a manifest: everything except :data:`NON_KEY_FIELDS`.

    It changes with the SAM type or checkpoint hash, generator settings, K, the image
    pipeline and degradation, the prior source and the format; each prior file records it.
    """
    settings = {k: v for k, v in manifest.items() if k not in NON_KEY_FIELDS}
    text = json.dumps(settings, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.contextmanager
def _manifest_lock(prior_dir):
    """Serialise manifest updates of concurrent extraction shards (no-op without fcntl)."""
    os.makedirs(prior_dir, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(osp.join(prior_dir, '.manifest.lock'), 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_json(path, manifest):
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def write_manifest(prior_dir, manifest):
    """Write ``manifest.json`` atomically, refusing to mix priors made with other settings.

    Args:
        prior_dir (str): the prior folder.
        manifest (dict): JSON-serialisable description (``format`` and ``key`` are added).

    Returns:
        dict: the manifest in the folder.
    """
    manifest = json.loads(json.dumps(dict(manifest, format=PRIOR_FORMAT)))
    manifest.pop('empty_priors', None)
    manifest['key'] = manifest_key(manifest)
    path = osp.join(prior_dir, MANIFEST_NAME)
    with _manifest_lock(prior_dir):
        if osp.isfile(path):
            old = read_manifest(prior_dir)
            fields = (set(old) | set(manifest)) - {'checkpoint', 'empty_priors', 'key'}
            changed = sorted(k for k in fields if old.get(k) != manifest.get(k))
            if changed:
                raise InputFileError(f'{path} was written with other settings (differs in '
                                     f'{changed}): use another --out folder or delete the old '
                                     'priors')
            if old.get('key') != manifest_key(old):  # edited by hand: the key follows the content
                old['key'] = manifest_key(old)
                _write_json(path, old)
            return old
        manifest['empty_priors'] = []
        _write_json(path, manifest)
    return manifest


def update_empty_priors(prior_dir, empty, non_empty):
    """Record which prior files hold no mask, in ``manifest.json`` (``empty_priors``).

    Args:
        prior_dir (str): the prior folder.
        empty (Iterable[str]): prior files (relative to ``prior_dir``) just written empty.
        non_empty (Iterable[str]): prior files just written with at least one mask.

    Returns:
        list[str]: the folder's empty prior files after the update.
    """
    path = osp.join(prior_dir, MANIFEST_NAME)
    with _manifest_lock(prior_dir):
        manifest = read_manifest(prior_dir)
        files = (set(manifest.get('empty_priors', [])) | set(empty)) - set(non_empty)
        manifest['empty_priors'] = sorted(files)
        _write_json(path, manifest)
    return manifest['empty_priors']


def read_manifest(prior_dir):
    """Read ``manifest.json`` of a prior folder (clear errors when absent, foreign or old)."""
    path = osp.join(prior_dir, MANIFEST_NAME)
    if not osp.isfile(path):
        raise InputNotFoundError(f'no SAM prior manifest {path}: make the priors with '
                                 '`python tools/extract_sam_priors.py CONFIG --out '
                                 f'{prior_dir} ...` (see docs/sam_priors.md)')
    try:
        with open(path) as f:
            manifest = json.load(f)
    except ValueError as e:
        raise InputFileError(f'{path} is not valid JSON ({e}): delete the prior folder and '
                             're-extract') from e
    if manifest.get('format') != PRIOR_FORMAT:
        raise InputFileError(f'{path} is not a {PRIOR_FORMAT} manifest (format '
                             f'{manifest.get("format")!r}): priors of older versions record '
                             'neither image hashes nor settings keys; re-extract them into a '
                             'new folder')
    return manifest
