"""The deterministic low-quality (LQ) version of any mmseg dataset, for evaluation.

Why a dataset and not a ``Degrade`` step in the test pipeline: mmseg's inference API reads the
test pipeline (``MMSegInferencer`` takes ``test_dataloader.dataset.pipeline``,
``inference_model`` takes ``test_pipeline``) and would synthesise degradation on a real
low-quality photo. Here the pipeline stays clean and the evaluation set (Cityscapes-LQ,
ADE20K-LQ, the degraded demo val split) is a dataset type of its own.
"""
import copy

from mmseg.registry import DATASETS

LOADING_TRANSFORMS = ('LoadImage', 'LoadImageFromFile')


def _type_name(step):
    kind = step.get('type') if isinstance(step, dict) else None
    kind = getattr(kind, '__name__', kind)
    return kind.split('.')[-1] if isinstance(kind, str) else None


def degraded_pipeline(pipeline, degradation, insert_after=None):
    """``pipeline`` with ``degradation`` (deterministic) inserted right after the image loading.

    Args:
        pipeline (list[dict]): a dataset pipeline config.
        degradation (dict): the transform config, ``Degrade`` arguments (``type`` optional).
        insert_after (str, optional): the type of the step the degradation follows (its first
            occurrence), e.g. ``'Resize'`` when a restorer's target (``Degrade(keep_hq=True)``)
            must have the resized size; default the image loading step.

    Returns:
        list[dict]: a new pipeline (the same steps when it already holds exactly this
        deterministic degradation, as a config that overrides the pipeline may do).
    """
    step = dict(copy.deepcopy(degradation))
    step.setdefault('type', 'Degrade')
    if step.get('deterministic') is False:
        raise ValueError('DegradedDataset: an evaluation set is degraded deterministically; drop '
                         'deterministic=False from `degradation` (random degradation belongs in '
                         'the training pipeline)')
    if _type_name(step) == 'Degrade':
        step['deterministic'] = True
    names = [_type_name(s) for s in pipeline]
    present = [dict(s) for s in pipeline if _type_name(s) == 'Degrade']
    if present == [step]:  # a config that put this very step in its own pipeline
        return [copy.deepcopy(s) for s in pipeline]
    if present:
        raise ValueError(f'DegradedDataset: the pipeline already has Degrade step(s) {present} '
                         f'besides the dataset\'s {step}; the images would be degraded twice. '
                         'Keep the pipeline clean (it is the inference pipeline) and set the '
                         'degradation on the dataset only')
    loaders = [i for i, n in enumerate(names) if n in LOADING_TRANSFORMS]
    if not loaders:
        raise ValueError(f'DegradedDataset: no {" or ".join(LOADING_TRANSFORMS)} step in the '
                         f'pipeline {names}: the degradation goes right after it')
    if insert_after is None:
        position = loaders[0]
    elif insert_after in names:
        position = names.index(insert_after)
    else:
        raise ValueError(f'DegradedDataset: insert_after={insert_after!r} names no step of the '
                         f'pipeline {names}')
    pipeline = [copy.deepcopy(s) for s in pipeline]
    pipeline.insert(position + 1, step)
    return pipeline


def plain_dataset_cfg(dataset_cfg):
    """Split a ``DegradedDataset`` config into the plain dataset config and its degradation.

    Args:
        dataset_cfg (dict): a dataset config (left untouched).

    Returns:
        tuple[dict, dict | None]: the config of the wrapped dataset type (clean pipeline) and
        the degradation config, or ``(dataset_cfg, None)`` for any other dataset type.
    """
    if _type_name(dataset_cfg) != 'DegradedDataset':
        return dataset_cfg, None
    cfg = dict(copy.deepcopy(dict(dataset_cfg)))
    cfg.pop('type')
    cfg.pop('insert_after', None)
    degradation = cfg.pop('degradation')
    cfg['type'] = cfg.pop('dataset_type')
    return cfg, degradation


def expanded_dataset_cfg(dataset_cfg):
    """A ``DegradedDataset`` config as it builds: the wrapped type with the degraded pipeline.

    Args:
        dataset_cfg (dict): a dataset config (left untouched); any other type is returned as is.

    Returns:
        dict: the config of the wrapped dataset type, its pipeline holding the degradation.
    """
    plain, degradation = plain_dataset_cfg(dataset_cfg)
    if degradation is None:
        return dataset_cfg
    return dict(plain, pipeline=degraded_pipeline(plain.get('pipeline', []), degradation,
                                                  dataset_cfg.get('insert_after')))


@DATASETS.register_module()
def DegradedDataset(dataset_type, degradation, pipeline, insert_after=None,  # noqa: N802
                    **kwargs):
    """Build ``dataset_type`` whose pipeline degrades every image right after loading.

    The degradation is deterministic (``Degrade(deterministic=True)``: seeded from each image's
    file name), so the LQ evaluation set is identical on every run and machine. The config
    keeps the dataset's own keys flat (``data_root``, ``data_prefix``...), so ``--cfg-options
    test_dataloader.dataset.data_root=...`` works as for the plain dataset, and ``pipeline``
    stays the clean inference pipeline that mmseg's inference API reads.

    Args:
        dataset_type (str): the registered dataset type to build (``'CityscapesDataset'``...).
        degradation (dict): ``Degrade`` arguments, e.g. ``dict(preset='rass_x1')``.
        pipeline (list[dict]): the clean pipeline (``LoadImageFromFile``/``LoadImage`` first).
        insert_after (str, optional): see :func:`degraded_pipeline` (default: after loading).
        **kwargs: the other arguments of ``dataset_type``.

    Returns:
        BaseSegDataset: an instance of ``dataset_type``.
    """
    return DATASETS.build(expanded_dataset_cfg(dict(
        type='DegradedDataset', dataset_type=dataset_type, degradation=degradation,
        pipeline=pipeline, insert_after=insert_after, **kwargs)))
