"""LoadSAMPriors: masks aligned through resize/crop/flip, packed; stale or wrong priors refused."""
import json
import os

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose

from mmseg_rass.sam import file_sha256, manifest_key, save_sam_prior, write_manifest
from mmseg_rass.sam.extract import degradation_spec
from mmseg_rass.transforms import sam_priors as sam_priors_module

H, W, K = 48, 64, 4
DEGRADE = dict(type='Degrade', preset='rass_x1')


def _scene(tmp_path, degradation=(DEGRADE, ), source=None):
    """An image file whose pixel values name the mask they belong to, its labels and priors."""
    labels = np.zeros((H, W), np.uint8)
    labels[10:30, 5:40] = 1
    labels[25:45, 30:60] = 2
    labels[0:8, 50:64] = 3
    masks = np.stack([labels == k for k in range(K)])
    img = (labels[..., None] * 60 + 10).repeat(3, axis=2).astype(np.uint8)
    img_path = tmp_path / 'data' / 'img' / 'a.png'
    img_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(img_path), img)
    prior_dir = tmp_path / 'priors'
    manifest = write_manifest(str(prior_dir), dict(
        sam_type='stand_in', img_root=str(tmp_path / 'data'), num_masks=K,
        degradation=[degradation_spec(d) for d in degradation],
        prior_source=source or dict(type='image')))
    save_sam_prior(str(prior_dir / 'img' / 'a.npz'), masks, np.ones(K, bool),
                   file_sha256(str(img_path)), manifest['key'])
    results = dict(img=img, img_path=str(img_path), img_shape=(H, W), ori_shape=(H, W),
                   gt_seg_map=labels.copy(), seg_fields=['gt_seg_map'], reduce_zero_label=False)
    if degradation:  # what Degrade records (the image itself is left clean for the checks)
        spec = degradation_spec(degradation[0])
        results['degradation'] = dict(spec, params={})
    return results, str(prior_dir)


def _load(prior_dir, **kwargs):
    return Compose([dict(type='LoadSAMPriors', prior_dir=prior_dir, **kwargs)])


def test_masks_follow_resize_crop_flip(tmp_path):
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
    results, prior_dir = _scene(tmp_path)
    other = dict(results, img_path=str(tmp_path / 'data' / 'img' / 'b.png'))
    with pytest.raises(FileNotFoundError, match=r'b\.png.*extract_sam_priors'):
        _load(prior_dir)(other)
    small = dict(results, img=results['img'][:20])
    with pytest.raises(ValueError, match=r'48x64 but image .*a\.png is 20x64'):
        _load(prior_dir)(small)


def test_changed_image_is_stale_and_verification_is_cached(tmp_path, monkeypatch):
    results, prior_dir = _scene(tmp_path)
    calls = []
    monkeypatch.setattr(sam_priors_module, 'file_sha256',
                        lambda p: calls.append(p) or file_sha256(p))
    load = _load(prior_dir)
    for _ in range(3):
        load(dict(results))
    assert len(calls) == 1  # the image is hashed once, not per load
    img = cv2.imread(results['img_path'])
    img[0, 0] = 255 - img[0, 0]
    cv2.imwrite(results['img_path'], img)  # new bytes (and mtime)
    os.utime(results['img_path'], ns=(1, 1))
    with pytest.raises(ValueError, match=r'prior .*a\.npz is stale: .*a\.png now has .*image '
                       r'changed.*extract_sam_priors'):
        load(dict(results))
    assert len(calls) == 2


def test_edited_manifest_makes_priors_stale(tmp_path):
    results, prior_dir = _scene(tmp_path)
    path = os.path.join(prior_dir, 'manifest.json')
    with open(path) as f:
        manifest = json.load(f)
    manifest['checkpoint_sha256'] = 'another SAM checkpoint'  # e.g. the checkpoint was swapped
    with open(path, 'w') as f:
        json.dump(manifest, f)
    with pytest.raises(ValueError, match=r'prior .*a\.npz is stale: made with settings key '
                       f'{manifest["key"][:12]}, but .*manifest.json now has key '
                       f'{manifest_key(manifest)[:12]}'):
        _load(prior_dir)(dict(results))


def test_other_degradation_is_refused(tmp_path):
    results, prior_dir = _scene(tmp_path)
    for applied in (dict(preset='blur', severity=3), dict(preset='rass_x1', jpeg_prob=0.)):
        spec = degradation_spec(dict(DEGRADE, **applied))
        with pytest.raises(ValueError, match=r'priors in .*priors were made with .*rass_x1.*but '
                           r'this pipeline degrades with'):
            _load(prior_dir)(dict(results, degradation=dict(spec, params={})))
    no_degrade = {k: v for k, v in results.items() if k != 'degradation'}
    with pytest.raises(ValueError, match=r'made on images degraded with .*but the pipeline has '
                       r'no Degrade step.*a\.png'):
        _load(prior_dir)(no_degrade)


def test_clean_priors_need_the_config_to_say_so(tmp_path):
    results, prior_dir = _scene(tmp_path, degradation=())
    with pytest.raises(ValueError, match=r'manifest.json: priors were made from undegraded images'
                       r'.*clean_priors=True'):
        _load(prior_dir)(dict(results))
    out = _load(prior_dir, clean_priors=True)(dict(results))
    assert out['gt_sam_masks'].shape == (H, W, K)
    spec = degradation_spec(DEGRADE)
    with pytest.raises(ValueError, match='made with no degradation .*but this pipeline degrades'):
        _load(prior_dir, clean_priors=True)(dict(results, degradation=dict(spec, params={})))


def test_prior_source_and_corrupt_file(tmp_path):
    results, prior_dir = _scene(tmp_path, source=dict(type='restorer', weights_sha256='x'))
    assert _load(prior_dir, prior_source='restorer')(dict(results))['sam_valid'].all()
    with pytest.raises(ValueError, match=r"made from the 'restorer' source.*requires 'image'"):
        _load(prior_dir, prior_source='image')(dict(results))
    with pytest.raises(ValueError, match='prior_source must be'):
        _load(prior_dir, prior_source='lq')
    with open(os.path.join(prior_dir, 'img', 'a.npz'), 'r+b') as f:
        f.truncate(100)
    with pytest.raises(ValueError, match=r'a\.npz is unreadable'):
        _load(prior_dir)(dict(results))


def test_pack_without_priors_equals_pack_seg_inputs(tmp_path):
    results, _ = _scene(tmp_path)
    plain = Compose([dict(type='PackSegInputs')])(dict(results))
    ours = Compose([dict(type='PackSegInputsWithSAMPriors')])(dict(results))
    assert 'gt_sam_masks' not in ours['data_samples']
    assert np.array_equal(plain['inputs'], ours['inputs'])
    assert set(plain['data_samples'].keys()) == set(ours['data_samples'].keys())
