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


def test_pack_restoration_inputs_with_and_without_the_clean_image():
    import numpy as np
    from mmseg_rass.transforms.pack_restoration import PackRestorationInputs
    lq = np.zeros((4, 6, 3), np.uint8)
    hq = np.full((4, 6, 3), 7, np.uint8)
    base = dict(img=lq, img_path='a.png', ori_shape=(4, 6), img_shape=(4, 6))
    packed = PackRestorationInputs()(dict(base, hq_img=hq))
    assert packed['data_samples'].gt_hq_img.data.shape == (3, 4, 6)
    assert int(packed['data_samples'].gt_hq_img.data.max()) == 7
    # a real low-quality photo at inference has no clean image: packed like PackSegInputs
    packed = PackRestorationInputs()(dict(base))
    assert 'gt_hq_img' not in packed['data_samples'] and packed['inputs'].shape == (3, 4, 6)
