"""The generated demo dataset: deterministic, street-like, readable by mmseg's CityscapesDataset."""
import hashlib
import json

import cv2
import numpy as np
import pytest
from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS

from mmseg_rass.datasets.demo_data import (GENERATOR_VERSION, MANIFEST_NAME, demo_data_status,
                                           ensure_demo_cityscapes, make_demo_cityscapes)


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


SMALL = dict(num_train=2, num_val=1, height=32, width=64)


def _manifest(root):
    return json.loads((root / MANIFEST_NAME).read_text())


def test_manifest_records_generator_and_settings(tmp_path):
    make_demo_cityscapes(str(tmp_path), seed=3, **SMALL)
    assert _manifest(tmp_path) == dict(format='mmseg_rass.demo_cityscapes',
                                       generator_version=GENERATOR_VERSION, seed=3, **SMALL)
    assert demo_data_status(str(tmp_path), seed=3, **SMALL) is None
    assert 'seed 3 -> 0' in demo_data_status(str(tmp_path), **SMALL)


def test_same_settings_are_not_rewritten(tmp_path, tool_loader, capsys):
    make_demo_cityscapes(str(tmp_path), **SMALL)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*') if p.is_file()}
    args = ['--out', str(tmp_path), '--num-train', '2', '--num-val', '1', '--height', '32',
            '--width', '64']
    tool_loader('make_demo_data').main(args)
    assert capsys.readouterr().out.strip() == (
        f'demo dataset {tmp_path} is up to date (2 train / 1 val, 32x64, seed 0): not rewritten')
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*') if p.is_file()} == before


@pytest.mark.parametrize('stale, reason', [
    ('old_version', f'written by generator version 1 (now {GENERATOR_VERSION})'),
    ('other_settings', 'written with other settings (num_train 3 -> 2)'),
    ('no_manifest', 'it has images but no valid demo_data_manifest.json'),
    ('missing_image', 'holds 1 files, expected 2'),
])
def test_stale_folder_is_regenerated(tmp_path, stale, reason):
    make_demo_cityscapes(str(tmp_path), **dict(SMALL, num_train=3 if stale == 'other_settings'
                                                else 2))
    images = sorted(tmp_path.glob('leftImg8bit/train/*/*.png'))
    if stale == 'old_version':  # version 1 wrote no manifest; a hand-edited one says 1
        (tmp_path / MANIFEST_NAME).write_text(json.dumps(dict(
            _manifest(tmp_path), generator_version=1)))
        images[0].write_bytes(b'old bytes')
    elif stale == 'no_manifest':
        (tmp_path / MANIFEST_NAME).unlink()
    elif stale == 'missing_image':
        images[0].unlink()
    assert reason in ensure_demo_cityscapes(str(tmp_path), **SMALL)
    fresh = tmp_path.parent / 'fresh'
    make_demo_cityscapes(str(fresh), **SMALL)
    assert _digest(tmp_path) == _digest(fresh)  # exactly the fresh files, nothing left over
    assert ensure_demo_cityscapes(str(tmp_path), **SMALL) is None


def test_dataset_refuses_data_of_another_generator(tmp_path):
    make_demo_cityscapes(str(tmp_path), **SMALL)
    cfg = dict(type='DemoCityscapesDataset', data_root=str(tmp_path),
               data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'))
    assert len(DATASETS.build(cfg)) == 2
    (tmp_path / MANIFEST_NAME).unlink()
    with pytest.raises(ValueError, match=(
            rf'not written by the current demo-data generator \(version {GENERATOR_VERSION}; its '
            rf'demo_data_manifest.json says nothing\): regenerate it with `python '
            rf'tools/make_demo_data.py --out {tmp_path}`')):
        DATASETS.build(cfg)


def test_a_folder_of_other_images_is_never_written_into(tmp_path, tool_loader):
    real = tmp_path / 'leftImg8bit' / 'train' / 'aachen'
    real.mkdir(parents=True)
    (real / 'aachen_000000_000019_leftImg8bit.png').write_bytes(b'a real image')
    with pytest.raises(SystemExit, match=f'make_demo_data: {tmp_path} holds other images '
                       r'\(leftImg8bit/\*/aachen\) and no demo_data_manifest.json'):
        tool_loader('make_demo_data').main(['--out', str(tmp_path)])
    assert [p.name for p in tmp_path.rglob('*') if p.is_file()] == [
        'aachen_000000_000019_leftImg8bit.png']
