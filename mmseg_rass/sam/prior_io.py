"""SAM prior cache: per-image bit-packed mask files plus a manifest.

Layout of a prior folder (written by ``tools/extract_sam_priors.py``)::

    PRIOR_DIR/manifest.json                     # SAM type, checkpoint hash, settings, K
    PRIOR_DIR/<image path relative to img_root, suffix replaced by .npz>

Each ``.npz`` holds ``bits`` (``np.packbits`` of the (K, H, W) boolean masks), ``shape``
(K, H, W), ``valid`` (K,) booleans (False for empty slots when SAM found fewer than K masks)
and ``areas`` (K,) pixel counts. Masks are sorted by decreasing area.
"""
import hashlib
import json
import os
import os.path as osp

import numpy as np

PRIOR_FORMAT = 'mmseg_rass.sam_priors.v1'
MANIFEST_NAME = 'manifest.json'


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


def save_sam_prior(path, masks, valid):
    """Write one image's priors atomically (a killed run never leaves a partial file).

    Args:
        path (str): destination ``.npz`` file; folders are created.
        masks (np.ndarray): (K, H, W) bool masks.
        valid (np.ndarray): (K,) bool validity.
    """
    masks = np.asarray(masks, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if masks.ndim != 3 or valid.shape != masks.shape[:1]:
        raise ValueError(f'save_sam_prior: masks must be (K, H, W) and valid (K,), got '
                         f'{masks.shape} and {valid.shape}')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}.npz'
    np.savez_compressed(tmp, bits=np.packbits(masks.reshape(-1)),
                        shape=np.asarray(masks.shape, dtype=np.int64), valid=valid,
                        areas=masks.reshape(masks.shape[0], -1).sum(1).astype(np.int64))
    os.replace(tmp, path)


def load_sam_prior(path):
    """Read one image's priors.

    Args:
        path (str): a ``.npz`` file written by :func:`save_sam_prior`.

    Returns:
        tuple[np.ndarray, np.ndarray]: masks (K, H, W) bool and valid (K,) bool.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(path)
    try:
        with np.load(path) as data:
            shape = tuple(int(s) for s in data['shape'])
            bits, valid = data['bits'], data['valid'].astype(bool)
    except (KeyError, ValueError, OSError) as e:
        raise ValueError(f'{path} is not a SAM prior file written by '
                         f'tools/extract_sam_priors.py ({e}); delete it and re-run the tool') from e
    masks = np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).astype(bool)
    return masks, valid


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
        raise ValueError(f'image {img_path} is not under img_root {img_root}: set img_root '
                         "(LoadSAMPriors) / the dataset's data_root to a folder containing it")
    return osp.join(prior_dir, osp.splitext(rel)[0] + '.npz')


def file_sha256(path, chunk=1 << 24):
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(prior_dir, manifest):
    """Write ``manifest.json`` atomically, refusing to mix priors made with other settings.

    Args:
        prior_dir (str): the prior folder.
        manifest (dict): JSON-serialisable description (``format`` is added).

    Returns:
        dict: the manifest written.
    """
    manifest = json.loads(json.dumps(dict(manifest, format=PRIOR_FORMAT)))
    path = osp.join(prior_dir, MANIFEST_NAME)
    if osp.isfile(path):
        old = read_manifest(prior_dir)
        if old != manifest:
            changed = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            raise ValueError(f'{path} was written with other settings (differs in {changed}): '
                             'use another --out folder or delete the old priors')
        return manifest
    os.makedirs(prior_dir, exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return manifest


def read_manifest(prior_dir):
    """Read ``manifest.json`` of a prior folder (clear errors when absent or foreign)."""
    path = osp.join(prior_dir, MANIFEST_NAME)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no SAM prior manifest {path}: make the priors with '
                                '`python tools/extract_sam_priors.py CONFIG --out '
                                f'{prior_dir} ...` (see docs/sam_priors.md)')
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get('format') != PRIOR_FORMAT:
        raise ValueError(f'{path} is not a {PRIOR_FORMAT} manifest')
    return manifest
