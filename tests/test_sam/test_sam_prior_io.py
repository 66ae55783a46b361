"""Prior files, manifest, K-largest selection and the generators' output schema."""
import json
import os

import numpy as np
import pytest

from mmseg_rass.sam import (StandInMaskGenerator, load_sam_prior, prior_path, read_manifest,
                            save_sam_prior, select_largest_masks, write_manifest)

SAM_RECORD_KEYS = {'segmentation', 'area', 'bbox', 'predicted_iou', 'point_coords',
                   'stability_score', 'crop_box'}


def _record(mask):
    return dict(segmentation=mask, area=int(mask.sum()))


def test_select_largest_sorted_and_padded():
    masks = [np.zeros((5, 7), bool) for _ in range(3)]
    masks[0][:1] = True  # area 7
    masks[1][:3] = True  # area 21
    masks[2][0, 0] = True  # area 1
    sel, valid = select_largest_masks([_record(m) for m in masks], 4, (5, 7))
    assert sel.shape == (4, 5, 7) and valid.tolist() == [True, True, True, False]
    assert [int(m.sum()) for m in sel] == [21, 7, 1, 0]
    sel2, valid2 = select_largest_masks([_record(m) for m in masks], 2, (5, 7))
    assert [int(m.sum()) for m in sel2] == [21, 7] and valid2.all()
    with pytest.raises(ValueError, match='expected the image shape'):
        select_largest_masks([_record(masks[0])], 2, (7, 5))


def test_prior_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.random((16, 37, 53)) > 0.5  # odd sizes: bit packing pads the last byte
    valid = np.arange(16) < 11
    path = str(tmp_path / 'a' / 'b.npz')
    save_sam_prior(path, masks, valid)
    loaded, loaded_valid = load_sam_prior(path)
    assert np.array_equal(loaded, masks) and np.array_equal(loaded_valid, valid)
    assert os.listdir(tmp_path / 'a') == ['b.npz']  # no temp file left
    # bit-packed: far below one byte per mask pixel
    assert os.path.getsize(path) < masks.size / 8 + 1024
    with pytest.raises(FileNotFoundError):
        load_sam_prior(str(tmp_path / 'missing.npz'))
    np.savez(str(tmp_path / 'foreign.npz'), x=np.zeros(3))
    with pytest.raises(ValueError, match='not a SAM prior file'):
        load_sam_prior(str(tmp_path / 'foreign.npz'))


def test_prior_path_and_manifest(tmp_path):
    assert prior_path('/p', '/data/leftImg8bit/train/c/x.png', '/data') == \
        '/p/leftImg8bit/train/c/x.npz'
    with pytest.raises(ValueError, match='not under img_root'):
        prior_path('/p', '/elsewhere/x.png', '/data')
    with pytest.raises(FileNotFoundError, match='extract_sam_priors'):
        read_manifest(str(tmp_path))
    info = dict(sam_type='vit_b', generator=dict(points_per_side=(32, )), num_masks=16)
    write_manifest(str(tmp_path), info)
    write_manifest(str(tmp_path), info)  # same settings: fine (shards, resume)
    assert read_manifest(str(tmp_path))['sam_type'] == 'vit_b'
    with pytest.raises(ValueError, match=r"differs in \['num_masks'\]"):
        write_manifest(str(tmp_path), dict(info, num_masks=8))
    with open(tmp_path / 'manifest.json') as f:
        assert json.load(f)['format'] == 'mmseg_rass.sam_priors.v1'


def test_stand_in_generator_schema():
    img = np.zeros((32, 48, 3), np.uint8)
    img[:16] = (200, 30, 30)
    img[16:, :24] = (30, 200, 30)
    records = StandInMaskGenerator().generate(img)
    assert len(records) == 3
    for r in records:
        assert set(r) == SAM_RECORD_KEYS
        assert r['segmentation'].dtype == bool and r['segmentation'].shape == (32, 48)
        assert r['area'] == r['segmentation'].sum()
    assert sorted(r['area'] for r in records) == [16 * 24, 16 * 24, 16 * 48]
