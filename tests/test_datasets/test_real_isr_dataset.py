"""RealISRDataset: the paired layouts of the Real-ISR benchmarks, LQ-only photos, pseudo-labels."""
import json

import mmcv
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmseg.registry import DATASETS


def _write(path, height, width, value=0):
    mmcv.imwrite(np.full((height, width, 3), value, np.uint8), str(path))


def _dataset(root, prefix, **kwargs):
    return DATASETS.build(dict(type='RealISRDataset', data_root=str(root), data_prefix=prefix,
                               pipeline=[], **kwargs))


def test_paired_layouts_find_each_hq_image(tmp_path):
    # DRealSR's release: LQ <name>_x4.png, HQ <name>_x1.png in two folders
    for name in ('Canon_1', 'DSC_2'):
        _write(tmp_path / 'test_LR' / f'{name}_x4.png', 8, 12)
        _write(tmp_path / 'test_HR' / f'{name}_x1.png', 32, 48)
    ds = _dataset(tmp_path, dict(img_path='test_LR', hq_path='test_HR'),
                  img_suffix='_x4.png', hq_suffix='_x1.png')
    assert [ds.get_data_info(i)['hq_path'].rsplit('/', 1)[1] for i in range(2)] == ['Canon_1_x1.png',
                                                                      'DSC_2_x1.png']
    assert 'seg_map_path' not in ds.get_data_info(0)  # no labels: restoration metrics only
    pipeline = Compose([dict(type='LoadImageFromFile'), dict(type='LoadHQImage', scale=4),
                        dict(type='PackRestorationInputs')])
    packed = pipeline(dict(ds.get_data_info(0)))
    assert packed['inputs'].shape == (3, 8, 12)
    assert packed['data_samples'].gt_hq_img.data.shape == (3, 32, 48)
    # a wrong scale is one error naming both files
    with pytest.raises(ValueError, match=r'HQ image .*Canon_1_x1.png is \(32, 48\), expected '
                                         r'\(16, 24\) = 2 x its LQ image'):
        Compose([dict(type='LoadImageFromFile'), dict(type='LoadHQImage', scale=2)])(
            dict(ds.get_data_info(0)))
    # an LQ image without its HQ image
    (tmp_path / 'test_HR' / 'DSC_2_x1.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'1 of 2 images have no HQ image, e.g. '
                                                r'.*DSC_2_x1.png'):
        _dataset(tmp_path, dict(img_path='test_LR', hq_path='test_HR'),
                 img_suffix='_x4.png', hq_suffix='_x1.png')


def test_lq_only_and_pseudo_labelled_folders(tmp_path):
    for i in range(3):
        _write(tmp_path / 'photos' / f'{i}.png', 10, 14)
    ds = _dataset(tmp_path, dict(img_path='photos'))
    assert len(ds) == 3 and 'hq_path' not in ds.get_data_info(0)
    with pytest.raises(FileNotFoundError, match='no \\*.jpg images in'):
        _dataset(tmp_path, dict(img_path='photos'), img_suffix='.jpg')
    with pytest.raises(FileNotFoundError, match='img_path folder .*missing does not exist'):
        _dataset(tmp_path, dict(img_path='missing'))
    # pseudo-labels: the labelling model's classes come from the tool's meta.json
    for i in range(3):
        mmcv.imwrite(np.full((10, 14), i, np.uint8), str(tmp_path / 'labels' / f'{i}.png'))
    meta = tmp_path / 'labels' / 'meta.json'
    meta.write_text(json.dumps(dict(classes=['wall', 'sky', 'tree'],
                                    palette=[[1, 2, 3], [4, 5, 6], [7, 8, 9]])))
    ds = _dataset(tmp_path, dict(img_path='photos', seg_map_path='labels'),
                  label_meta=str(meta))
    assert ds.metainfo['classes'] == ('wall', 'sky', 'tree')
    assert ds.get_data_info(2)['seg_map_path'].endswith('labels/2.png')
    meta.write_text(json.dumps(dict(classes=['wall', 'sky'], palette=[[1, 2, 3]])))
    with pytest.raises(ValueError, match='one `palette` colour per class'):
        _dataset(tmp_path, dict(img_path='photos'), label_meta=str(meta))
    with pytest.raises(FileNotFoundError, match='tools/make_pseudo_labels.py writes'):
        _dataset(tmp_path, dict(img_path='photos'), label_meta=str(tmp_path / 'none.json'))


def test_benchmark_configs_point_at_the_published_layouts(repo_root):
    cfg = Config.fromfile(f'{repo_root}/configs/segsr/segsr_sd21_x4_realsr.py')
    assert cfg.test_dataloader.dataset.data_prefix == dict(img_path='RealSR/test_LR',
                                                           hq_path='RealSR/test_HR')
    assert cfg.model.scale == 4 and cfg.test_evaluator.test_y_channel
    lq_only = Config.fromfile(f'{repo_root}/configs/segsr/segsr_sd21_x4_reallq250.py')
    assert lq_only.test_dataloader.dataset.data_prefix == dict(img_path='RealLQ250')
    assert [t['type'] for t in lq_only.test_dataloader.dataset.pipeline] == [
        'LoadImageFromFile', 'PackRestorationInputs']
    assert set(lq_only.test_evaluator.metrics) == {'NIQE', 'MUSIQ', 'MANIQA', 'CLIPIQA'}


def test_load_hq_image_passes_a_photo_without_hq_through(repo_root):
    from mmseg_rass.transforms import LoadHQImage
    results = dict(img=np.zeros((4, 4, 3), np.uint8), img_path='photo.png')
    assert LoadHQImage(scale=4).transform(dict(results)).keys() == results.keys()
