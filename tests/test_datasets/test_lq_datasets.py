"""LQ dataset configs (demo, Cityscapes, ADE20K, RealLQ) and the RealLQ folder dataset."""
import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS

LQ_CONFIGS = ['demo_cityscapes_lq', 'cityscapes_lq', 'ade20k_lq', 'real_lq']


@pytest.mark.parametrize('name', LQ_CONFIGS)
def test_lq_configs_degrade_the_evaluation_set_not_the_inference_pipeline(repo_root, name):
    cfg = Config.fromfile(f'{repo_root}/configs/_base_/datasets/{name}.py')
    assert cfg.test_dataloader == cfg.val_dataloader
    dataset = cfg.val_dataloader.dataset
    for pipeline in (cfg.test_pipeline, dataset.pipeline):  # inference_model, MMSegInferencer
        names = [t['type'] for t in pipeline]
        assert names[0] == 'LoadImageFromFile' and 'Degrade' not in names
    if name == 'real_lq':  # real LQ images: nothing synthetic
        assert dataset.type == 'RealLQDataset'
        return
    assert dataset.type == 'DegradedDataset'
    assert dataset.degradation == dict(type='Degrade', preset='rass_x1')
    train = cfg.train_dataloader.dataset.pipeline
    assert train[1] == dict(type='Degrade', preset='rass_x1')


def test_demo_lq_dataset_is_degraded_and_val_is_reproducible(repo_root, demo_data_root):
    cfg = Config.fromfile(f'{repo_root}/configs/_base_/datasets/demo_cityscapes_lq.py')
    clean_cfg = Config.fromfile(f'{repo_root}/configs/_base_/datasets/demo_cityscapes.py')
    items = []
    for c in (cfg, cfg, clean_cfg):
        ds_cfg = c.val_dataloader.dataset
        ds_cfg.data_root = str(demo_data_root)
        items.append(DATASETS.build(ds_cfg)[0])
    a, b, clean = (i['inputs'].numpy() for i in items)
    assert a.shape == clean.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, clean)
    # the same images as a Degrade(deterministic=True) step right after loading
    step_cfg = clean_cfg.val_dataloader.dataset
    step_cfg.pipeline.insert(1, dict(type='Degrade', preset='rass_x1', deterministic=True))
    assert np.array_equal(a, DATASETS.build(step_cfg)[0]['inputs'].numpy())
    train_cfg = cfg.train_dataloader.dataset
    train_cfg.data_root = str(demo_data_root)
    out = DATASETS.build(train_cfg)[0]
    assert out['inputs'].shape[0] == 3 and out['data_samples'].gt_sem_seg.data.shape[1:] == \
        out['inputs'].shape[1:]


def test_demo_lq_trains_with_the_baseline_model(repo_root, demo_data_root, tool_runner, tmp_path):
    cfg = Config.fromfile(f'{repo_root}/configs/baseline/fpn_r18_demo_cityscapes.py')
    lq = Config.fromfile(f'{repo_root}/configs/_base_/datasets/demo_cityscapes_lq.py')
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset = lq[f'{split}_dataloader'].dataset
        loader.dataset.data_root = str(demo_data_root)
        loader.num_workers, loader.persistent_workers = 0, False
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 2
    cfg.train_dataloader.batch_size = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.dump(str(tmp_path / 'fpn_r18_demo_cityscapes_lq.py'))
    proc = tool_runner(['tools/train.py', str(tmp_path / 'fpn_r18_demo_cityscapes_lq.py'),
                        '--work-dir', str(tmp_path / 'work')])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Iter(train) [2/2]' in log and 'mIoU' in log


def test_real_lq_dataset_loads_ade_layout_and_names_missing_folder(tmp_path):
    import cv2
    (tmp_path / 'images/validation').mkdir(parents=True)
    (tmp_path / 'annotations/validation').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'images/validation/x_1.png'), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'annotations/validation/x_1.png'), np.ones((8, 8), np.uint8))
    prefix = dict(img_path='images/validation', seg_map_path='annotations/validation')
    ds = DATASETS.build(dict(type='RealLQDataset', data_root=str(tmp_path), img_suffix='.png',
                             data_prefix=prefix, pipeline=[]))
    assert len(ds) == 1 and ds[0]['seg_map_path'].endswith('x_1.png')
    assert ds.metainfo['classes'][0] == 'wall' and len(ds.metainfo['classes']) == 150
    with pytest.raises(FileNotFoundError, match='img_path folder .*nowhere.* does not exist'):
        DATASETS.build(dict(type='RealLQDataset', data_root=str(tmp_path / 'nowhere'),
                            data_prefix=prefix, pipeline=[]))
