"""Loading cached SAM priors, checked against the image and settings they were made from."""
import json
import os
import os.path as osp
import warnings

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..sam.extract import NO_DEGRADE_HINT
from ..sam.prior_io import (MANIFEST_NAME, REEXTRACT_HINT, file_sha256, load_sam_prior,
                            manifest_key, prior_path, read_manifest)

PRIOR_SOURCES = ('image', 'restorer')


@TRANSFORMS.register_module()
class LoadSAMPriors(BaseTransform):
    """Load the SAM masks of ``results['img_path']`` from a prior folder, refusing stale ones.

    The masks go to ``results['gt_sam_masks']`` as an (H, W, K) uint8 array (0/1) listed in
    ``results['seg_fields']``, so mmseg's ``Resize``/``RandomResize`` (nearest), ``RandomCrop``
    and ``RandomFlip`` transform them exactly like the label map. ``results['sam_valid']``
    (K,) bool tells which slots hold a mask. Place it right after ``LoadImage`` (and
    ``Degrade``), before any geometric transform, and pack with ``PackSegInputsWithSAMPriors``.

    Every prior is checked (one clear ``ValueError`` naming the file and the mismatch):
    its recorded settings key must equal the key of the folder's ``manifest.json`` (SAM type
    and checkpoint hash, generator settings, K, degradation, prior source); its recorded
    SHA-256 must equal that of the image file's bytes (hashed once per worker process and
    again only when the file's size, mtime or inode change); the ``Degrade`` step before this
    transform (``results['degradation']``) must be the one the priors were made with; priors
    of undegraded images need ``clean_priors=True``.

    Args:
        prior_dir (str): folder written by ``tools/extract_sam_priors.py``.
        img_root (str, optional): folder image paths are relative to; defaults to the
            ``img_root`` recorded in the manifest (the dataset's ``data_root``).
        clean_priors (bool): accept priors made without degradation (clean images, or files
            that are already low-quality). Default False: such priors are refused.
        prior_source (str, optional): require priors made from ``'image'`` (the pipeline's
            image) or from a ``'restorer'``'s output; None accepts either.
    """

    def __init__(self, prior_dir, img_root=None, clean_priors=False, prior_source=None):
        if prior_source not in (None, ) + PRIOR_SOURCES:
            raise ValueError(f'LoadSAMPriors prior_source must be None or one of '
                             f'{PRIOR_SOURCES}, got {prior_source!r}')
        self.prior_dir = prior_dir
        self.img_root = img_root
        self.clean_priors = clean_priors
        self.prior_source = prior_source
        self._manifest = None
        self._key = None
        self._degradations_ok = set()
        self._verified = {}

    def _load_manifest(self):
        if self._manifest is not None:
            return self._manifest
        manifest = read_manifest(self.prior_dir)
        path = osp.join(self.prior_dir, MANIFEST_NAME)
        source = manifest.get('prior_source', {}).get('type')
        if self.prior_source is not None and source != self.prior_source:
            raise ValueError(f'{path}: priors were made from the {source!r} source, but '
                             f'LoadSAMPriors(prior_source={self.prior_source!r}) requires '
                             f'{self.prior_source!r}: point prior_dir at the right folder')
        if not manifest.get('degradation') and not self.clean_priors:
            raise ValueError(f'{path}: priors were made from undegraded images (no Degrade '
                             'step); ' + NO_DEGRADE_HINT)
        empty = manifest.get('empty_priors', [])
        if empty:
            warnings.warn(f'{len(empty)} SAM prior files in {self.prior_dir} hold no mask '
                          f'(listed in {MANIFEST_NAME} "empty_priors", e.g. {empty[0]})')
        self._key = manifest_key(manifest)
        self._manifest = manifest
        return manifest

    def _check_degradation(self, results):
        expected = self._manifest.get('degradation', [])
        applied = results.get('degradation')
        if applied is not None:
            applied = json.loads(json.dumps(dict(
                preset=applied.get('preset'), severity=applied.get('severity'),
                overrides=applied.get('overrides', {}))))
        text = json.dumps(applied, sort_keys=True)
        if text in self._degradations_ok:
            return
        where = osp.join(self.prior_dir, MANIFEST_NAME)
        if applied is None and expected:
            raise ValueError(f'SAM priors in {self.prior_dir} were made on images degraded with '
                             f'{expected[0]} ({where}), but the pipeline has no Degrade step '
                             f'before LoadSAMPriors (image {results.get("img_path")})')
        if applied is not None and (not expected or expected[0] != applied):
            made = expected[0] if expected else 'no degradation'
            raise ValueError(f'SAM priors in {self.prior_dir} were made with {made} ({where}), '
                             f'but this pipeline degrades with {applied}: extract priors with '
                             'this config into another --out folder')
        self._degradations_ok.add(text)

    def _check_record(self, prior, path, img_path):
        if prior.manifest_key != self._key:
            raise ValueError(
                f'SAM prior {path} is stale: made with settings key {prior.manifest_key[:12]}, '
                f'but {osp.join(self.prior_dir, MANIFEST_NAME)} now has key {self._key[:12]} '
                '(SAM checkpoint, generator settings, K, degradation or prior source changed): '
                + REEXTRACT_HINT)
        stat = os.stat(img_path)
        signature = (stat.st_size, stat.st_mtime_ns, stat.st_ino, prior.image_sha256)
        if self._verified.get(path) == signature:
            return
        sha = file_sha256(img_path)
        if sha != prior.image_sha256:
            raise ValueError(
                f'SAM prior {path} is stale: it was made from image bytes with SHA-256 '
                f'{prior.image_sha256[:12]}, but {img_path} now has {sha[:12]} (the image '
                'changed): ' + REEXTRACT_HINT)
        self._verified[path] = signature

    def transform(self, results):
        manifest = self._load_manifest()
        img_path = results['img_path']
        root = self.img_root if self.img_root is not None else manifest['img_root']
        path = prior_path(self.prior_dir, img_path, root)
        try:
            prior = load_sam_prior(path)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'no SAM prior for image {img_path} (expected {path}): run '
                f'`python tools/extract_sam_priors.py CONFIG --out {self.prior_dir} ...` for '
                'this split (it resumes, only missing images are processed)') from e
        self._check_degradation(results)
        self._check_record(prior, path, img_path)
        masks = prior.masks
        h, w = results['img'].shape[:2]
        if masks.shape[1:] != (h, w):
            raise ValueError(
                f'SAM prior {path} is {masks.shape[1]}x{masks.shape[2]} but image {img_path} is '
                f'{h}x{w} at this point of the pipeline: put LoadSAMPriors before any resize/'
                'crop, and make the priors with the same degradation (e.g. the same scale)')
        results['gt_sam_masks'] = np.ascontiguousarray(masks.transpose(1, 2, 0), dtype=np.uint8)
        results['sam_valid'] = prior.valid
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_sam_masks' not in seg_fields:
            seg_fields.append('gt_sam_masks')
        return results

    def __repr__(self):
        return (f'{type(self).__name__}(prior_dir={self.prior_dir!r}, img_root={self.img_root!r}, '
                f'clean_priors={self.clean_priors}, prior_source={self.prior_source!r})')
