"""Data checked when a dataset is built: each bad file named, before any training step; files
the check cannot judge (other loaders, no pipeline) and datasets mmengine accepts are left alone."""
import shutil
import struct

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import DATASETS, TRANSFORMS
from PIL import Image

from mmseg_rass.datasets.data_check import DATA_CHECK_ENV, DataCheckError, check_dataset

CITY = 'demo_city'


@pytest.fixture
def data(demo_data_root, tmp_path, monkeypatch):
    """A private copy of the demo data (tests damage it)."""
    monkeypatch.delenv(DATA_CHECK_ENV, raising=False)
    root = tmp_path / 'data'
    shutil.copytree(demo_data_root, root)
    return root


def files(root, split):
    images = sorted((root / 'leftImg8bit' / split / CITY).iterdir())
    labels = sorted((root / 'gtFine' / split / CITY).iterdir())
    return images, labels


LOADERS = [dict(type='LoadImage'), dict(type='LoadAnnotations')]


def build(root, split='train', **kwargs):
    kwargs.setdefault('pipeline', LOADERS)
    return DATASETS.build(dict(
        type='DemoCityscapesDataset', data_root=str(root),
        data_prefix=dict(img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}'),
        **kwargs))


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_good_data_passes_in_both_modes(data):
    assert len(build(data)) == 4
    assert check_dataset(build(data), mode='full') == 4


def test_every_bad_file_is_named_at_build(data):
    images, labels = files(data, 'train')
    labels[0].unlink()                                    # missing label
    truncate(labels[1])                                   # truncated label PNG
    images[2].write_bytes(b'not an image at all')         # unreadable image
    Image.open(labels[3]).resize((32, 16)).save(labels[3])  # size mismatch
    with pytest.raises(DataCheckError) as info:
        build(data)
    message = str(info.value)
    assert '4 problem(s) in 4 samples' in message
    assert f'label {labels[0]} does not exist' in message
    assert f'label {labels[1]} is not a readable image' in message
    assert f'image {images[2]} is not a readable image' in message
    assert f'label {labels[3]} is 32x16 but its image {images[3]} is 128x64' in message


def test_colour_label_is_refused(data):
    _, labels = files(data, 'val')
    Image.open(labels[0]).convert('RGB').save(labels[0])
    with pytest.raises(DataCheckError, match=f'label {labels[0]} has colour mode RGB'):
        build(data, split='val')


def test_empty_split_says_where_it_looked(data):
    with pytest.raises(DataCheckError) as info:
        build(data, img_suffix='.jpg')
    message = str(info.value)
    assert 'has no samples' in message and "img_suffix='.jpg'" in message
    assert str(data / 'leftImg8bit' / 'train') in message


def test_a_fixed_file_is_checked_again(data):
    _, labels = files(data, 'val')
    good = labels[0].read_bytes()
    build(data, split='val')  # passes, remembered
    truncate(labels[0])
    with pytest.raises(DataCheckError, match='truncated|broken|not a readable'):
        build(data, split='val')
    labels[0].write_bytes(good)
    build(data, split='val')


def test_check_can_be_switched_off(data, monkeypatch):
    _, labels = files(data, 'val')
    truncate(labels[0])
    monkeypatch.setenv(DATA_CHECK_ENV, 'off')
    dataset = build(data, split='val', pipeline=[dict(type='LoadAnnotations')])
    # then the label loader still names the file when it cannot read it
    with pytest.raises(ValueError, match=f'cannot decode label {labels[0]}'):
        dataset[0]
    monkeypatch.setenv(DATA_CHECK_ENV, 'quick')
    with pytest.raises(ValueError, match="is not a data-check mode: use one of"):
        build(data, split='val')


def test_mmseg_load_annotations_names_the_label(data):
    _, labels = files(data, 'val')
    truncate(labels[0])
    load = TRANSFORMS.build(dict(type='LoadAnnotations'))
    results = dict(seg_map_path=str(labels[0]), reduce_zero_label=False, seg_fields=[])
    with pytest.raises(OSError, match='image file is truncated') as unpatched:  # mmseg alone
        type(load)._load_seg_map.__wrapped__(load, dict(results))
    assert str(labels[0]) not in str(unpatched.value)
    with pytest.raises(ValueError, match=f'cannot decode label {labels[0]}'):
        load(dict(results))
    labels[1].unlink()
    with pytest.raises(FileNotFoundError, match=f'label {labels[1]} does not exist'):
        load(dict(results, seg_map_path=str(labels[1])))


def test_missing_val_label_stops_before_the_first_iteration(data, tmp_path, repo_root):
    _, labels = files(data, 'val')
    labels[1].unlink()
    cfg = Config.fromfile(f'{repo_root}/configs/baseline/fpn_r18_demo_cityscapes.py')
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(data)
        cfg[f'{split}_dataloader'].num_workers = 0
        cfg[f'{split}_dataloader'].persistent_workers = False
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(DataCheckError, match=f'label {labels[1]} does not exist'):
        runner.train()
    assert runner.iter == 0


def test_check_data_tool(data, repo_root, tool_loader, capsys):
    tool = tool_loader('check_data')
    _, labels = files(data, 'val')
    labels[0].unlink()
    config = f'{repo_root}/configs/baseline/fpn_r18_demo_cityscapes.py'
    failed = tool.main([config, '--cfg-options', *[f'{s}_dataloader.dataset.data_root={data}'
                                                   for s in ('train', 'val', 'test')]])
    out = capsys.readouterr().out
    assert failed == 1
    assert 'train: 4 samples OK (full check)' in out
    assert 'val: DemoCityscapesDataset' in out and f'label {labels[0]} does not exist' in out
    assert 'test: same dataset as above' in out


def test_labels_a_pipeline_does_not_read_are_not_checked(data):
    _, labels = files(data, 'val')
    labels[0].unlink()
    assert len(build(data, split='val', pipeline=[dict(type='LoadImage')])) == 2
    with pytest.raises(DataCheckError, match=f'label {labels[0]} does not exist'):
        build(data, split='val', pipeline=[dict(type='LoadImage'), dict(type='LoadAnnotations')])


def test_files_are_checked_once_per_machine(data, monkeypatch):
    _, labels = files(data, 'val')
    labels[0].unlink()
    monkeypatch.setenv('LOCAL_RANK', '1')  # another process of a distributed run
    assert len(build(data, split='val')) == 2
    with pytest.raises(DataCheckError, match='has no samples'):  # emptiness: on every process
        build(data, split='val', img_suffix='.jpg')
    monkeypatch.setenv('LOCAL_RANK', '0')
    with pytest.raises(DataCheckError, match=f'label {labels[0]} does not exist'):
        build(data, split='val')


def test_files_without_a_loader_the_check_knows_are_not_judged(data):
    images, labels = files(data, 'train')
    images[0].write_bytes(b'not an image at all')
    labels[1].unlink()
    for pipeline in ([], [dict(type='PackSegInputs')]):  # nothing reads the files here
        assert len(build(data, pipeline=pipeline)) == 4
    # mmengine's own BaseDataset without a pipeline (as in mmengine's tests)
    from mmengine.dataset import BaseDataset
    dataset = BaseDataset(data_root=str(data), data_prefix=dict(img_path='leftImg8bit/train'),
                          ann_file='', lazy_init=True)
    dataset.load_data_list = lambda: [dict(img_path=str(p)) for p in images]
    dataset.full_init()
    assert len(dataset) == 4


def test_npy_dataset_read_by_mmseg_loaders_builds_and_loads(tmp_path):
    image = np.random.default_rng(0).random((8, 6, 3), dtype=np.float32)
    label = np.arange(48, dtype=np.uint8).reshape(8, 6) % 3
    for folder, array in (('img', image), ('ann', label)):
        (tmp_path / folder).mkdir()
        np.save(tmp_path / folder / 'a.npy', array)
    config = dict(type='BaseSegDataset', data_root=str(tmp_path), img_suffix='.npy',
                  seg_map_suffix='.npy', data_prefix=dict(img_path='img', seg_map_path='ann'),
                  metainfo=dict(classes=('a', 'b', 'c')))
    dataset = DATASETS.build(dict(config, pipeline=[
        dict(type='LoadBiomedicalImageFromFile', decode_backend='numpy', to_xyz=False),
        dict(type='LoadBiomedicalAnnotation', decode_backend='numpy', to_xyz=False)]))
    sample = dataset[0]  # the loaders mmseg runs read what the check left alone
    assert np.array_equal(sample['gt_seg_map'], label)
    # read by a loader the check knows (mmcv's image decoder), a .npy is refused: training
    # would fail on it
    with pytest.raises(DataCheckError, match=r'image .*a\.npy is not a readable image'):
        DATASETS.build(dict(config, pipeline=[dict(type='LoadImageFromFile')]))


def write_multiband_tiff(path, array):
    """A baseline TIFF of (H, W, C) float32 samples, C > 4: what GeoTIFF tools write."""
    height, width, bands = array.shape
    data = np.ascontiguousarray(array, dtype='<f4').tobytes()
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, 32), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, bands), (278, 3, 1, height),
               (279, 4, 1, len(data)), (284, 3, 1, 1), (339, 3, 1, 3)]
    ifd = struct.pack('<H', len(entries)) + b''.join(
        struct.pack('<HHI', tag, kind, count) + struct.pack('<I' if kind == 4 else '<HH',
                                                           *([value] if kind == 4 else [value, 0]))
        for tag, kind, count, value in entries) + struct.pack('<I', 0)
    path.write_bytes(b'II*\x00' + struct.pack('<I', 8 + len(data)) + data + ifd)


def test_multiband_geotiff_read_by_mmseg_rs_loader_builds(tmp_path, monkeypatch):
    from mmseg.datasets.transforms import loading
    from PIL import Image, UnidentifiedImageError
    (tmp_path / 'img').mkdir()
    write_multiband_tiff(tmp_path / 'img' / 'a.tif', np.ones((4, 5, 6), np.float32))
    with pytest.raises(UnidentifiedImageError):  # PIL cannot read it (the old check refused it)
        Image.open(tmp_path / 'img' / 'a.tif')
    # LoadSingleRSImageFromFile reads GeoTIFFs with GDAL, which only needs to be importable to
    # build the transform; the data check must leave its files alone
    monkeypatch.setattr(loading, 'gdal', object())
    dataset = DATASETS.build(dict(
        type='BaseSegDataset', data_root=str(tmp_path), img_suffix='.tif',
        data_prefix=dict(img_path='img'), metainfo=dict(classes=('a', 'b')),
        pipeline=[dict(type='LoadSingleRSImageFromFile')]))
    assert len(dataset) == 1


@pytest.mark.parametrize('dataset_type', ['BaseSegDataset', 'BaseDataset'])
def test_empty_unserialised_dataset_builds_as_in_mmengine(tmp_path, dataset_type):
    from mmengine.dataset import BaseDataset
    (tmp_path / 'img').mkdir()
    if dataset_type == 'BaseDataset':
        dataset = BaseDataset(ann_file='', serialize_data=False, lazy_init=True)
        dataset.load_data_list = lambda: []
        dataset.full_init()
    else:
        dataset = DATASETS.build(dict(type=dataset_type, data_root=str(tmp_path),
                                      data_prefix=dict(img_path='img'), serialize_data=False,
                                      pipeline=LOADERS))
    assert len(dataset) == 0
    # serialised, mmengine cannot build it either (numpy's concatenate of nothing): the
    # plug-in's error says where it looked
    with pytest.raises(DataCheckError, match=rf"data_root='{tmp_path}'.*has no samples"):
        DATASETS.build(dict(type='BaseSegDataset', data_root=str(tmp_path),
                            data_prefix=dict(img_path='img'), pipeline=LOADERS))
