"""Prior files, manifest, K-largest selection and the generators' output schema."""
import hashlib
import json
import struct
import os
import zipfile

import numpy as np
import pytest

from mmseg_rass.sam import (StandInMaskGenerator, load_sam_prior, manifest_key, prior_path,
                            read_manifest, save_sam_prior, select_largest_masks,
                            update_empty_priors, write_manifest)

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
    save_sam_prior(path, masks, valid, 'ab' * 32, 'cd' * 32)
    prior = load_sam_prior(path)
    assert np.array_equal(prior.masks, masks) and np.array_equal(prior.valid, valid)
    assert prior.image_sha256 == 'ab' * 32 and prior.manifest_key == 'cd' * 32
    assert os.listdir(tmp_path / 'a') == ['b.npz']  # no temp file left
    # bit-packed: far below one byte per mask pixel
    assert os.path.getsize(path) < masks.size / 8 + 2048
    with pytest.raises(FileNotFoundError):
        load_sam_prior(str(tmp_path / 'missing.npz'))


def test_broken_prior_files_name_themselves(tmp_path):
    good = str(tmp_path / 'good.npz')
    masks = np.ones((3, 8, 8), bool)
    save_sam_prior(good, masks, np.ones(3, bool), 'a', 'k')
    data = open(good, 'rb').read()
    cases = {'empty.npz': b'', 'truncated.npz': data[:len(data) // 2],
             'garbage.npz': b'PK\x03\x04' + b'\x00' * 40}
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ValueError, match=rf'{name} is unreadable.*extract_sam_priors'):
            load_sam_prior(str(tmp_path / name))
    np.savez(str(tmp_path / 'foreign.npz'), x=np.zeros(3))
    with pytest.raises(ValueError, match=r'foreign\.npz is unreadable.*bits/shape/valid'):
        load_sam_prior(str(tmp_path / 'foreign.npz'))
    # a bit array too short for the shape would unpack to silently empty masks
    short = np.packbits(masks.reshape(-1))[:10]
    np.savez(str(tmp_path / 'short.npz'), bits=short, shape=np.array([3, 8, 8]),
             valid=np.ones(3, bool),
             records=np.asarray([hashlib.sha256(short.tobytes()).hexdigest(), 'a', 'k']))
    with pytest.raises(ValueError, match=r'short\.npz is inconsistent: .*10 packed bytes'):
        load_sam_prior(str(tmp_path / 'short.npz'))
    np.savez(str(tmp_path / 'v1.npz'), bits=np.packbits(masks.reshape(-1)),
             shape=np.array([3, 8, 8]), valid=np.ones(3, bool))
    with pytest.raises(ValueError, match=r'v1\.npz has no image/manifest record'):
        load_sam_prior(str(tmp_path / 'v1.npz'))
    with np.load(good) as g:  # well-formed, but the mask bits are not those written
        entries = dict(g)
    entries['bits'] = entries['bits'] ^ 1
    np.savez(str(tmp_path / 'altered.npz'), **entries)
    with pytest.raises(ValueError, match=r'altered\.npz is damaged'):
        load_sam_prior(str(tmp_path / 'altered.npz'))
    with zipfile.ZipFile(good) as g:  # a flipped byte in the compressed mask bits
        member = g.getinfo('bits.npy')
    start = member.header_offset
    name_len, extra_len = struct.unpack('<HH', data[start + 26:start + 30])
    offset = start + 30 + name_len + extra_len + member.compress_size // 2
    flipped = bytearray(data)
    flipped[offset] ^= 0xFF
    (tmp_path / 'flipped.npz').write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r'flipped\.npz is (unreadable|damaged)'):
        load_sam_prior(str(tmp_path / 'flipped.npz'))


def test_prior_path_and_manifest(tmp_path):
    assert prior_path('/p', '/data/leftImg8bit/train/c/x.png', '/data') == \
        '/p/leftImg8bit/train/c/x.npz'
    with pytest.raises(ValueError, match='not under img_root'):
        prior_path('/p', '/elsewhere/x.png', '/data')
    with pytest.raises(FileNotFoundError, match='extract_sam_priors'):
        read_manifest(str(tmp_path))
    info = dict(sam_type='vit_b', generator=dict(points_per_side=(32, )), num_masks=16,
                img_root='/data')
    written = write_manifest(str(tmp_path), info)
    assert write_manifest(str(tmp_path), info) == written  # same settings: fine (shards)
    manifest = read_manifest(str(tmp_path))
    assert manifest['sam_type'] == 'vit_b' and manifest['empty_priors'] == []
    assert manifest['key'] == manifest_key(manifest)
    # the key is about how priors were made, not where the images are or what was found
    assert manifest_key(dict(manifest, img_root='/x', empty_priors=['a'],
                             checkpoint='renamed.pth')) == manifest['key']
    for change in (dict(num_masks=8), dict(sam_type='vit_h'), dict(checkpoint_sha256='x')):
        assert manifest_key(dict(manifest, **change)) != manifest['key']
    with pytest.raises(ValueError, match=r"differs in \['num_masks'\]"):
        write_manifest(str(tmp_path), dict(info, num_masks=8))
    assert update_empty_priors(str(tmp_path), ['a.npz', 'b.npz'], []) == ['a.npz', 'b.npz']
    assert update_empty_priors(str(tmp_path), ['c.npz'], ['a.npz']) == ['b.npz', 'c.npz']
    with open(tmp_path / 'manifest.json') as f:
        on_disk = json.load(f)
    assert on_disk['format'] == 'mmseg_rass.sam_priors.v2'
    assert on_disk['empty_priors'] == ['b.npz', 'c.npz']
    write_manifest(str(tmp_path), info)  # the empty list is not a setting
    on_disk['generator'] = dict(points_per_side=64)  # edited by hand: the key follows
    (tmp_path / 'manifest.json').write_text(json.dumps(on_disk))
    refreshed = write_manifest(str(tmp_path), dict(info, generator=dict(points_per_side=64)))
    assert refreshed['key'] == manifest_key(refreshed) != manifest['key']
    assert read_manifest(str(tmp_path))['key'] == refreshed['key']
    on_disk['format'] = 'mmseg_rass.sam_priors.v1'
    (tmp_path / 'manifest.json').write_text(json.dumps(on_disk))
    with pytest.raises(ValueError, match='older versions.*re-extract'):
        read_manifest(str(tmp_path))


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
