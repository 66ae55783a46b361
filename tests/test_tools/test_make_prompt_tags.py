"""tools/make_prompt_tags.py: OSEDiff-style prompt files / a tagger → a content-keyed tag cache."""
import glob
import json
import os.path as osp
import runpy

import pytest

from mmseg_rass.models.prompts import TAGS_FORMAT, load_prompt_tags
from mmseg_rass.sam.prior_io import file_sha256


def test_from_txt_and_errors(repo_root, demo_data_root, tmp_path):
    tool = runpy.run_path(osp.join(repo_root, 'tools', 'make_prompt_tags.py'))
    images = sorted(glob.glob(f'{demo_data_root}/leftImg8bit/val/*/*.png'))
    txt = tmp_path / 'txt'
    txt.mkdir()
    for i, img in enumerate(images):  # what OSEDiff's test script saves: <stem>.txt
        (txt / (osp.splitext(osp.basename(img))[0] + '.txt')).write_text(f'road, car{i}, \n')
    out = tmp_path / 'tags.json'
    config = osp.join(repo_root, 'configs/rass/rass_tiny_demo.py')
    args = [config, '--split', 'val', '--from-txt', str(txt), '--out', str(out),
            '--cfg-options', f'val_dataloader.dataset.data_root={demo_data_root}']
    assert tool['main'](args) == dict(tagged=2, skipped=0)
    data = json.loads(out.read_text())
    assert data['format'] == TAGS_FORMAT and data['runs'][0]['image'] == 'pipeline'
    assert data['runs'][0]['degradation'][0]['deterministic'] is True  # the LQ val image
    tags = load_prompt_tags(str(out))
    assert tags == {file_sha256(img): f'road, car{i},' for i, img in enumerate(images)}
    assert tool['main'](args) == dict(tagged=0, skipped=2)  # resumable

    (txt / (osp.splitext(osp.basename(images[1]))[0] + '.txt')).unlink()
    with pytest.raises(FileNotFoundError, match='no prompt file'):
        tool['main'](args + ['--overwrite'])
    with pytest.raises(ValueError, match='module:callable'):
        tool['load_tagger']('os.path')
