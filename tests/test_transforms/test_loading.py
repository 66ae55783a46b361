"""LoadImage: mmcv's loader with errors that name the file."""
import numpy as np
import pytest
from mmseg.registry import TRANSFORMS


def test_loads_like_mmcv(demo_data_root):
    path = str(next(demo_data_root.glob('leftImg8bit/train/*/*.png')))
    ours = TRANSFORMS.build(dict(type='LoadImage'))(dict(img_path=path))
    ref = TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(img_path=path))
    assert np.array_equal(ours['img'], ref['img'])
    assert ours['img_shape'] == ref['img_shape'] == (64, 128)


def test_corrupt_image_names_the_file(tmp_path):
    bad = tmp_path / 'broken_leftImg8bit.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    with pytest.raises(ValueError, match='cannot decode image .*broken_leftImg8bit.png'):
        TRANSFORMS.build(dict(type='LoadImage'))(dict(img_path=str(bad)))


def test_missing_image_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='gone.png does not exist'):
        TRANSFORMS.build(dict(type='LoadImage'))(dict(img_path=str(tmp_path / 'gone.png')))
