"""LoadSAMPriors keeps the masks aligned through mmseg's resize/crop/flip, and packs them."""
import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope

from mmseg_rass.sam import save_sam_prior, write_manifest

H, W, K = 48, 64, 4


def _scene(tmp_path):
    """An image whose pixel values name the mask they belong to, its labels and priors."""
    labels = np.zeros((H, W), np.uint8)
    labels[10:30, 5:40] = 1
    labels[25:45, 30:60] = 2
    labels[0:8, 50:64] = 3
    masks = np.stack([labels == k for k in range(K)])
    img = (labels[..., None] * 60 + 10).repeat(3, axis=2).astype(np.uint8)
    img_path = tmp_path / 'data' / 'img' / 'a.png'
    img_path.parent.mkdir(parents=True)
    prior_dir = tmp_path / 'priors'
    save_sam_prior(str(prior_dir / 'img' / 'a.npz'), masks, np.ones(K, bool))
    write_manifest(str(prior_dir), dict(sam_type='stand_in', img_root=str(tmp_path / 'data')))
    results = dict(img=img, img_path=str(img_path), img_shape=(H, W), ori_shape=(H, W),
                   gt_seg_map=labels.copy(), seg_fields=['gt_seg_map'], reduce_zero_label=False)
    return results, str(prior_dir)


def test_masks_follow_resize_crop_flip(tmp_path):
    init_default_scope('mmseg')
    results, prior_dir = _scene(tmp_path)
    pipeline = Compose([
        dict(type='LoadSAMPriors', prior_dir=prior_dir),
        dict(type='RandomResize', scale=(W, H), ratio_range=(1.3, 1.7), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(40, 56)),
        dict(type='RandomFlip', prob=1.0, direction='horizontal'),
        dict(type='PackSegInputsWithSAMPriors'),
    ])
    np.random.seed(3)
    packed = pipeline(results)
    sample = packed['data_samples']
    masks = sample.gt_sam_masks.data.numpy()
    labels = sample.gt_sem_seg.data.numpy()[0]
    assert masks.shape == (K, 40, 56) and masks.dtype == np.uint8
    assert sample.flip
    for k in range(K):  # nearest-resized, cropped, flipped exactly like the label map
        assert np.array_equal(masks[k].astype(bool), labels == k)


def test_masks_follow_crop_and_flip_of_the_image(tmp_path):
    init_default_scope('mmseg')
    results, prior_dir = _scene(tmp_path)
    pipeline = Compose([
        dict(type='LoadSAMPriors', prior_dir=prior_dir),
        dict(type='RandomCrop', crop_size=(30, 37)),
        dict(type='RandomFlip', prob=1.0, direction='vertical'),
        dict(type='PackSegInputsWithSAMPriors'),
    ])
    np.random.seed(0)
    packed = pipeline(results)
    img = packed['inputs'].numpy()[0]  # (H, W) channel 0: value = 60 * label + 10
    masks = packed['data_samples'].gt_sam_masks.data.numpy()
    for k in range(K):
        assert np.array_equal(masks[k].astype(bool), img == 60 * k + 10)


def test_missing_or_mismatched_prior_is_named(tmp_path):
    init_default_scope('mmseg')
    results, prior_dir = _scene(tmp_path)
    other = dict(results, img_path=str(tmp_path / 'data' / 'img' / 'b.png'))
    with pytest.raises(FileNotFoundError, match=r'b\.png.*extract_sam_priors'):
        Compose([dict(type='LoadSAMPriors', prior_dir=prior_dir)])(other)
    small = dict(results, img=results['img'][:20])
    with pytest.raises(ValueError, match=r'48x64 but image .*a\.png is 20x64'):
        Compose([dict(type='LoadSAMPriors', prior_dir=prior_dir)])(small)


def test_pack_without_priors_equals_pack_seg_inputs(tmp_path):
    init_default_scope('mmseg')
    results, _ = _scene(tmp_path)
    plain = Compose([dict(type='PackSegInputs')])(dict(results))
    ours = Compose([dict(type='PackSegInputsWithSAMPriors')])(dict(results))
    assert 'gt_sam_masks' not in ours['data_samples']
    assert np.array_equal(plain['inputs'], ours['inputs'])
    assert set(plain['data_samples'].keys()) == set(ours['data_samples'].keys())
