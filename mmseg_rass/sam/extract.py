"""Running a mask generator over a dataset split and writing the prior cache."""
import copy
import os.path as osp

import mmcv
from mmcv.transforms import Compose
from mmseg.registry import DATASETS

from ..datasets.degraded_dataset import degraded_pipeline, plain_dataset_cfg
from .prior_io import prior_path, save_sam_prior, select_largest_masks, write_manifest

LOADING_TYPES = ('LoadImage', 'LoadImageFromFile')
DEGRADE_TYPE = 'Degrade'


def prior_pipeline(pipeline):
    """The part of a dataset pipeline that makes the image SAM sees.

    Keeps the image loading and ``Degrade`` steps in order (``Degrade`` forced to
    ``deterministic=True``, so the LQ image is the same in every run), drops the rest
    (annotations, geometric and photometric augmentation, packing).

    Args:
        pipeline (list[dict]): a dataset's pipeline config.

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
        raise ValueError('the dataset pipeline has no LoadImage/LoadImageFromFile step: cannot '
                         'tell how to load the images for SAM')
    return kept, [s for s in kept if s['type'] == DEGRADE_TYPE]


def unwrap_dataset_cfg(dataset_cfg):
    """Follow ``RepeatDataset``-style wrappers (``dataset=...``) to the real dataset config; a
    ``DegradedDataset`` becomes its dataset with the ``Degrade`` step in the pipeline."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    plain, degradation = plain_dataset_cfg(dataset_cfg)
    if degradation is not None:
        dataset_cfg = dict(plain, pipeline=degraded_pipeline(plain.get('pipeline', []),
                                                             degradation))
    if 'datasets' in dataset_cfg:
        raise ValueError('ConcatDataset splits are not supported: run the tool per dataset')
    return dataset_cfg


def extract_sam_priors(dataset_cfg, out_dir, generator, manifest_info, num_masks=16,
                       shard=(0, 1), progress=True):
    """Write the K largest masks of every image of a split (resumable, shardable).

    Args:
        dataset_cfg (dict): an mmseg dataset config (its pipeline decides LQ vs clean).
        out_dir (str): prior folder.
        generator: object with ``generate(rgb_uint8_hwc) -> list[dict]`` in the schema of
            ``SamAutomaticMaskGenerator.generate``.
        manifest_info (dict): ``sam_type``, checkpoint hash, generator settings...
        num_masks (int): K.
        shard (tuple[int, int]): (i, n): process images i, i + n, i + 2n, ...
        progress (bool): show a progress bar.

    Returns:
        dict: counts ``done`` (written now), ``skipped`` (already present), ``total`` (shard).
    """
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f'shard must be i/n with 0 <= i < n, got {index}/{count}')
    dataset_cfg = unwrap_dataset_cfg(dataset_cfg)
    steps, degrades = prior_pipeline(dataset_cfg.get('pipeline', []))
    dataset = DATASETS.build(dict(copy.deepcopy(dataset_cfg), pipeline=[]))
    img_root = dataset_cfg.get('data_root') or ''
    write_manifest(out_dir, dict(manifest_info, num_masks=num_masks, img_root=img_root,
                                 image_pipeline=steps, degradation=degrades))
    pipeline = Compose(steps)
    indices = range(index, len(dataset), count)
    todo = []
    for i in indices:
        info = dataset.get_data_info(i)
        path = prior_path(out_dir, info['img_path'], img_root)
        if not osp.isfile(path):
            todo.append((info, path))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc=f'SAM priors shard {index}/{count}', unit='img')
    for info, path in todo:
        results = pipeline(dict(img_path=info['img_path'], seg_fields=[]))
        rgb = mmcv.bgr2rgb(results['img'])
        masks, valid = select_largest_masks(generator.generate(rgb), num_masks, rgb.shape[:2])
        save_sam_prior(path, masks, valid)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return dict(done=len(todo), skipped=len(indices) - len(todo), total=len(indices))
