"""Running a mask generator over a dataset split and writing the prior cache."""
import copy
import json
import os.path as osp
import warnings

import mmcv
from mmcv.transforms import Compose
from mmseg.registry import DATASETS

from ..datasets.degraded_dataset import expanded_dataset_cfg
from ..errors import ConfigError, ParameterError
from .prior_io import (file_sha256, load_sam_prior, prior_path, save_sam_prior,
                       select_largest_masks, update_empty_priors, write_manifest)
from .prior_source import IMAGE_SOURCE

LOADING_TYPES = ('LoadImage', 'LoadImageFromFile')
DEGRADE_TYPE = 'Degrade'
NO_DEGRADE_HINT = ('if that is intended (clean priors, or image files that are already '
                   'low-quality), set clean_priors=True on the LoadSAMPriors step of the config '
                   '(extraction: or --clean-priors)')


def prior_pipeline(pipeline, clean_priors=False):
    """The part of a dataset pipeline that makes the image SAM sees.

    Keeps the image loading and ``Degrade`` steps in order (``Degrade`` forced to
    ``deterministic=True``, so the LQ image is the same in every run), drops the rest
    (annotations, geometric and photometric augmentation, packing).

    Args:
        pipeline (list[dict]): a dataset's pipeline config.
        clean_priors (bool): allow a pipeline without ``Degrade`` (priors of undegraded images).

    Returns:
        tuple[list[dict], list[dict]]: the kept steps and the ``Degrade`` configs among them.
    """
    kept = []
    for step in pipeline:
        step_type = step.get('type') if isinstance(step, dict) else None
        if step_type in LOADING_TYPES:
            kept.append(copy.deepcopy(dict(step)))
        elif step_type == DEGRADE_TYPE:
            kept.append(dict(copy.deepcopy(dict(step)), deterministic=True))
    if not kept or kept[0]['type'] not in LOADING_TYPES:
        raise ConfigError('the dataset pipeline has no LoadImage/LoadImageFromFile step: cannot '
                          'tell how to load the images for SAM')
    degrades = [s for s in kept if s['type'] == DEGRADE_TYPE]
    if len(degrades) > 1:
        raise ConfigError(f'the dataset pipeline has {len(degrades)} Degrade steps; SAM priors '
                          'support one')
    if not degrades and not clean_priors:
        raise ConfigError('the dataset pipeline has no Degrade step, so SAM would see the clean '
                          'image and clean information would reach a low-quality benchmark; '
                          + NO_DEGRADE_HINT)
    for step in degrades:  # keep_hq only changes what else is kept in results
        step.pop('keep_hq', None)
    return kept, degrades


def degradation_spec(step):
    """What makes a ``Degrade`` step's output, JSON-normalised: preset, severity, overrides.

    Args:
        step (dict): a ``Degrade`` config (``type``, ``deterministic``, ``keep_hq`` ignored).

    Returns:
        dict: ``preset``, ``severity`` and ``overrides``, as ``Degrade`` records them in
        ``results['degradation']``.
    """
    overrides = {k: v for k, v in step.items()
                 if k not in ('type', 'deterministic', 'keep_hq', 'preset', 'severity')}
    return json.loads(json.dumps(dict(preset=step.get('preset', 'rass_x1'),
                                      severity=step.get('severity'), overrides=overrides)))


def unwrap_dataset_cfg(dataset_cfg):
    """Follow ``RepeatDataset``-style wrappers (``dataset=...``) to the real dataset config; a
    ``DegradedDataset`` becomes its dataset with the ``Degrade`` step in the pipeline."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    dataset_cfg = expanded_dataset_cfg(dataset_cfg)
    if 'datasets' in dataset_cfg:
        raise ConfigError('ConcatDataset splits are not supported: run the tool per dataset')
    return dataset_cfg


def _wants_clean_priors(pipeline):
    return any(isinstance(s, dict) and s.get('type') == 'LoadSAMPriors' and s.get('clean_priors')
               for s in pipeline)


def _is_current(path, image_sha256, key):
    """Whether a prior file exists, is readable and was made from this image and settings."""
    if not osp.isfile(path):
        return None
    try:
        prior = load_sam_prior(path)
    except ValueError:
        return False
    return prior.image_sha256 == image_sha256 and prior.manifest_key == key


def extract_sam_priors(dataset_cfg, out_dir, generator, manifest_info, num_masks=16,
                       shard=(0, 1), progress=True, clean_priors=False, prior_source=None):
    """Write the K largest masks of every image of a split (resumable, shardable).

    Images whose prior file is present, readable and made from the same image bytes and
    settings are skipped; missing ones are extracted, and stale (image changed, settings key
    changed) or broken ones re-extracted. Priors with no mask are counted, warned about and
    listed in the manifest (``empty_priors``).

    Args:
        dataset_cfg (dict): an mmseg dataset config (its pipeline decides LQ vs clean).
        out_dir (str): prior folder.
        generator: object with ``generate(rgb_uint8_hwc) -> list[dict]`` in the schema of
            ``SamAutomaticMaskGenerator.generate``.
        manifest_info (dict): ``sam_type``, checkpoint hash, generator settings...
        num_masks (int): K.
        shard (tuple[int, int]): (i, n): process images i, i + n, i + 2n, ...
        progress (bool): show a progress bar.
        clean_priors (bool): allow a pipeline without ``Degrade`` (also enabled by
            ``LoadSAMPriors(clean_priors=True)`` in the dataset's pipeline).
        prior_source (callable, optional): maps the pipeline's BGR image to the RGB image SAM
            sees, with an ``info`` dict for the manifest (``RestorerPriorSource``); None: SAM
            sees the pipeline's image.

    Returns:
        dict: counts ``done`` (written now), ``replaced`` (of which stale or broken before),
        ``skipped`` (current), ``empty`` (written without any mask), ``total`` (shard).
    """
    index, count = shard
    if not 0 <= index < count:
        raise ParameterError(f'shard must be i/n with 0 <= i < n, got {index}/{count}')
    dataset_cfg = unwrap_dataset_cfg(dataset_cfg)
    pipeline_cfg = dataset_cfg.get('pipeline', [])
    clean_priors = clean_priors or _wants_clean_priors(pipeline_cfg)
    steps, degrades = prior_pipeline(pipeline_cfg, clean_priors)
    dataset = DATASETS.build(dict(copy.deepcopy(dataset_cfg), pipeline=[]))
    img_root = dataset_cfg.get('data_root') or ''
    source = IMAGE_SOURCE if prior_source is None else prior_source.info
    manifest = write_manifest(out_dir, dict(
        manifest_info, num_masks=num_masks, img_root=img_root, image_pipeline=steps,
        degradation=[degradation_spec(s) for s in degrades], prior_source=source))
    key = manifest['key']
    pipeline = Compose(steps)
    indices = range(index, len(dataset), count)
    todo, replaced = [], 0
    for i in indices:
        img_path = dataset.get_data_info(i)['img_path']
        path = prior_path(out_dir, img_path, img_root)
        sha = file_sha256(img_path)
        current = _is_current(path, sha, key)
        if not current:
            todo.append((img_path, path, sha))
            replaced += current is False
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc=f'SAM priors shard {index}/{count}', unit='img')
    empty, non_empty = [], []
    for img_path, path, sha in todo:
        img = pipeline(dict(img_path=img_path, seg_fields=[]))['img']
        rgb = mmcv.bgr2rgb(img) if prior_source is None else prior_source(img)
        masks, valid = select_largest_masks(generator.generate(rgb), num_masks, rgb.shape[:2])
        save_sam_prior(path, masks, valid, sha, key)
        (non_empty if valid.any() else empty).append(osp.relpath(path, out_dir))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    all_empty = update_empty_priors(out_dir, empty, non_empty) if todo else \
        manifest.get('empty_priors', [])
    if empty:
        warnings.warn(f'SAM found no mask in {len(empty)} of {len(todo)} images written now '
                      f'(e.g. {empty[0]}); {len(all_empty)} empty priors in {out_dir}, listed '
                      'in manifest.json "empty_priors". Models see no prior for them: check the '
                      'SAM checkpoint and generator thresholds.')
    return dict(done=len(todo), replaced=replaced, skipped=len(indices) - len(todo),
                empty=len(empty), total=len(indices))
