"""DegradedDataset: the LQ evaluation set as a dataset, the pipeline left clean for inference."""
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS

from mmseg_rass.datasets.degraded_dataset import (degraded_pipeline, expanded_dataset_cfg,
                                                  plain_dataset_cfg)

CLEAN = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 32), keep_ratio=True),
         dict(type='LoadAnnotations'), dict(type='PackSegInputs')]


def test_degradation_goes_right_after_loading_and_is_deterministic():
    out = degraded_pipeline(CLEAN, dict(preset='rass_x1'))
    assert out[1] == dict(type='Degrade', preset='rass_x1', deterministic=True)
    assert out[0] == CLEAN[0] and out[2:] == CLEAN[1:] and len(CLEAN) == 4  # input untouched


def test_insert_after_places_the_degradation_after_that_step():
    # a restorer's HQ target (keep_hq) must have the size of the LQ image: degrade after Resize
    out = degraded_pipeline(CLEAN, dict(preset='rass_x1', keep_hq=True), insert_after='Resize')
    assert [s['type'] for s in out] == ['LoadImageFromFile', 'Resize', 'Degrade',
                                        'LoadAnnotations', 'PackSegInputs']
    with pytest.raises(ValueError, match=r"insert_after='RandomCrop' names no step"):
        degraded_pipeline(CLEAN, dict(preset='rass_x1'), insert_after='RandomCrop')
    cfg = dict(type='DegradedDataset', dataset_type='DemoCityscapesDataset', pipeline=CLEAN,
               degradation=dict(preset='blur'), insert_after='Resize', data_root='x')
    expanded = expanded_dataset_cfg(cfg)
    assert expanded['type'] == 'DemoCityscapesDataset' and 'insert_after' not in expanded
    assert [s['type'] for s in expanded['pipeline']][2] == 'Degrade'
    assert plain_dataset_cfg(cfg)[0]['pipeline'] == CLEAN  # the clean dataset, for robustness


def test_bad_degradations_are_refused():
    with pytest.raises(ValueError, match='deterministic=False'):
        degraded_pipeline(CLEAN, dict(preset='rass_x1', deterministic=False))
    with pytest.raises(ValueError, match='degraded twice'):
        degraded_pipeline([CLEAN[0], dict(type='Degrade')] + CLEAN[1:], dict(preset='blur'))
    # a child config that put the same deterministic step into its own pipeline keeps it once
    own = [CLEAN[0], dict(type='Degrade', preset='blur', deterministic=True)] + CLEAN[1:]
    assert degraded_pipeline(own, dict(type='Degrade', preset='blur')) == own
    with pytest.raises(ValueError, match='no LoadImage or LoadImageFromFile step'):
        degraded_pipeline(CLEAN[1:], dict(preset='rass_x1'))


def test_builds_the_wrapped_type_with_flat_keys(demo_data_root):
    ds = DATASETS.build(dict(type='DegradedDataset', dataset_type='DemoCityscapesDataset',
                             degradation=dict(type='Degrade', preset='rass_x1'),
                             data_root=str(demo_data_root), pipeline=CLEAN,
                             data_prefix=dict(img_path='leftImg8bit/val',
                                              seg_map_path='gtFine/val')))
    assert type(ds).__name__ == 'DemoCityscapesDataset' and len(ds) == 2
    assert [type(t).__name__ for t in ds.pipeline.transforms][:2] == ['LoadImageFromFile',
                                                                       'Degrade']
    assert ds.pipeline.transforms[1].deterministic


def test_plain_config_and_the_tools_that_need_it(repo_root):
    cfg = Config.fromfile(f'{repo_root}/configs/_base_/datasets/cityscapes_lq.py')
    lq = cfg.test_dataloader.dataset
    plain, degradation = plain_dataset_cfg(lq)
    assert plain['type'] == 'CityscapesDataset' and 'dataset_type' not in plain
    assert degradation == dict(type='Degrade', preset='rass_x1') and lq.type == 'DegradedDataset'
    assert plain_dataset_cfg(plain) == (plain, None)

    # the robustness benchmark evaluates the clean version of an LQ evaluation set
    from mmseg_rass.evaluation.robustness import clean_test_pipeline
    removed = clean_test_pipeline(lq)
    assert removed == [degradation] and lq.type == 'CityscapesDataset'

    # SAM priors of an LQ evaluation set are extracted from its degraded images
    from mmseg_rass.sam.extract import prior_pipeline, unwrap_dataset_cfg
    cfg = Config.fromfile(f'{repo_root}/configs/_base_/datasets/cityscapes_lq.py')
    resolved = unwrap_dataset_cfg(cfg.val_dataloader.dataset)
    steps, degrades = prior_pipeline(resolved['pipeline'])
    assert [s['type'] for s in steps] == ['LoadImageFromFile', 'Degrade']
    assert degrades[0]['deterministic'] and resolved['type'] == 'CityscapesDataset'
