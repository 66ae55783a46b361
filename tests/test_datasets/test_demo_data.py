"""The generated demo dataset: deterministic, street-like, readable by mmseg's CityscapesDataset."""
import hashlib

import cv2
import numpy as np
import pytest
from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS

from mmseg_rass.datasets.demo_data import make_demo_cityscapes


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob('*.png')):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_arguments_give_same_bytes(tmp_path):
    a = make_demo_cityscapes(str(tmp_path / 'a'), num_train=2, num_val=1, height=64, width=96)
    make_demo_cityscapes(str(tmp_path / 'b'), num_train=2, num_val=1, height=64, width=96)
    make_demo_cityscapes(str(tmp_path / 'c'), 2, 1, 64, 96, seed=1)
    assert _digest(tmp_path / 'a') == _digest(tmp_path / 'b') != _digest(tmp_path / 'c')
    assert a.endswith('a')


def test_cityscapes_dataset_reads_demo_data(demo_data_root):
    ds = CityscapesDataset(
        data_root=str(demo_data_root),
        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')])
    assert len(ds) == 4 and len(ds.metainfo['classes']) == 19
    sample = ds[0]
    assert sample['img'].shape == (64, 128, 3) and sample['img'].dtype == np.uint8
    labels = np.unique(sample['gt_seg_map'])
    assert set(labels.tolist()) <= set(range(19)) | {255}


def test_scene_content_is_street_like(demo_data_root):
    labels = np.concatenate([cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ravel()
                             for p in demo_data_root.glob('gtFine/*/*/*.png')])
    present = set(np.unique(labels).tolist())
    # road, sidewalk, building, sky and at least one vehicle class appear in every small set.
    assert {0, 1, 2, 10} <= present and present & {13, 14, 15}
    sky_top = cv2.imread(str(next(demo_data_root.glob('gtFine/train/*/*.png'))), 0)[0]
    assert (sky_top == 10).mean() > 0.3


def test_demo_dataset_missing_root_says_how_to_generate(tmp_path):
    with pytest.raises(FileNotFoundError, match='make_demo_data.py') as e:
        DATASETS.build(dict(
            type='DemoCityscapesDataset', data_root=str(tmp_path / 'missing'),
            data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
    assert str(tmp_path / 'missing') in str(e.value)


def test_bad_generator_arguments(tmp_path):
    with pytest.raises(ValueError, match='at least 32x32'):
        make_demo_cityscapes(str(tmp_path), height=8)
