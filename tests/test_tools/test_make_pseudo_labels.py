"""tools/make_pseudo_labels.py: any mmseg model labels an image folder; the cache is keyed by
the image bytes, the checkpoint bytes and the config text."""
import json
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest
import torch

from mmseg_rass.tools_entry import run_cli

CONFIG = 'configs/baseline/fpn_r18_demo_cityscapes.py'


@pytest.fixture(scope='module')
def labeller(repo_root, tmp_path_factory):
    """A random FPN-R18 checkpoint with its classes (strict loading needs every tensor)."""
    from mmengine.config import Config
    from mmseg.apis import init_model
    cfg = Config.fromfile(osp.join(repo_root, CONFIG))
    torch.manual_seed(0)
    model = init_model(cfg, None, device='cpu')
    path = tmp_path_factory.mktemp('labeller') / 'fpn.pth'
    meta = dict(dataset_meta=dict(classes=[f'c{i}' for i in range(19)],
                                  palette=[[i, 2 * i, 3 * i] for i in range(19)]))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return str(path)


def test_labels_any_folder_with_the_models_classes_and_caches_by_content(
        labeller, demo_data_root, tool_loader, tmp_path):
    tool = tool_loader('make_pseudo_labels')
    images = tmp_path / 'hq'
    shutil.copytree(demo_data_root / 'leftImg8bit' / 'val', images)
    names = sorted(p.relative_to(images) for p in images.rglob('*.png'))
    cache, out = tmp_path / 'cache', tmp_path / 'labels'
    args = [CONFIG, labeller, str(images), '--out-dir', str(out), '--cache-dir', str(cache)]
    tool.main(args)
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['classes'][:2] == ['c0', 'c1'] and len(meta['palette']) == 19
    assert meta['num_images'] == len(names) == 2
    first = {}
    for name in names:
        label = mmcv.imread(str(out / name), 'unchanged')
        image = mmcv.imread(str(images / name))
        assert label.dtype == np.uint8 and label.shape == image.shape[:2] and label.max() < 19
        first[name] = label
    assert len(list(cache.rglob('*.png'))) == 2

    def run():
        shutil.rmtree(out)
        model = tool.load_model(CONFIG, labeller, 'cpu')
        key = tool.model_key(model, tool.file_sha256(labeller))
        found = tool.list_images([str(images)])
        return key, tool.pseudo_label(model, found, str(out), str(cache), key, progress=False)

    key, (written, cached) = run()
    assert (written, cached) == (2, 2)  # nothing changed: every map from the cache
    assert all((mmcv.imread(str(out / n), 'unchanged') == first[n]).all() for n in names)
    # a changed image is labelled again, under a new key; the other comes from the cache
    changed = images / names[0]
    mmcv.imwrite(255 - mmcv.imread(str(changed)), str(changed))
    assert run()[1] == (2, 1)
    # another config text (or checkpoint) is another model: nothing is reused
    other = tool.load_model(CONFIG, labeller, 'cpu', {'model.decode_head.dropout_ratio': 0.2})
    assert tool.model_key(other, tool.file_sha256(labeller)) != key


def test_bad_inputs_are_one_line_errors(labeller, tool_loader, tmp_path):
    tool = tool_loader('make_pseudo_labels')
    with pytest.raises(SystemExit, match='^error: image folder .*none does not exist'):
        run_cli(tool.main, [CONFIG, labeller, str(tmp_path / 'none'), '--out-dir',
                            str(tmp_path)])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit, match='^error: no images'):
        run_cli(tool.main, [CONFIG, labeller, str(tmp_path / 'empty'), '--out-dir',
                            str(tmp_path)])


def test_a_url_checkpoint_is_hashed_as_the_bytes_it_loads(labeller, demo_data_root, tool_loader,
                                                          http_folder, tmp_path, monkeypatch):
    folder, base = http_folder
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    shutil.copyfile(labeller, folder / 'fpn.pth')
    tool = tool_loader('make_pseudo_labels')
    images = str(demo_data_root / 'leftImg8bit' / 'val')
    for checkpoint, out in ((labeller, 'local'), (f'{base}/fpn.pth', 'url')):
        tool.main([CONFIG, checkpoint, images, '--out-dir', str(tmp_path / out),
                   '--cache-dir', str(tmp_path / f'cache_{out}')])
    local, url = (json.loads((tmp_path / out / 'meta.json').read_text())
                  for out in ('local', 'url'))
    assert url['checkpoint_sha256'] == local['checkpoint_sha256'] == tool.file_sha256(labeller)
    for name in sorted(p.relative_to(tmp_path / 'local') for p in
                       (tmp_path / 'local').rglob('*.png')):
        assert (mmcv.imread(str(tmp_path / 'url' / name), 'unchanged') ==
                mmcv.imread(str(tmp_path / 'local' / name), 'unchanged')).all()
    with pytest.raises(SystemExit, match=rf'^error: checkpoint {base}/none.pth cannot be '
                       'downloaded'):
        run_cli(tool.main, [CONFIG, f'{base}/none.pth', images, '--out-dir', str(tmp_path)])
