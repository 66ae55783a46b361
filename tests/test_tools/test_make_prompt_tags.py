"""tools/make_prompt_tags.py: OSEDiff-style prompt files / a tagger → a tag cache keyed by image
bytes, tagger identity and degradation."""
import glob
import json
import os.path as osp

import pytest

from mmseg_rass.models.prompts import TAGS_FORMAT, PromptTagCache, degradation_key, tag_entry_key
from mmseg_rass.sam.prior_io import file_sha256


def test_from_txt_and_errors(repo_root, demo_data_root, tmp_path, tool_loader, capsys):
    tool = tool_loader('make_prompt_tags')
    images = sorted(glob.glob(f'{demo_data_root}/leftImg8bit/val/*/*.png'))
    txt = tmp_path / 'txt'
    txt.mkdir()
    for i, img in enumerate(images):  # what OSEDiff's test script saves: <stem>.txt
        (txt / (osp.splitext(osp.basename(img))[0] + '.txt')).write_text(f'road, car{i}, \n')
    out = tmp_path / 'tags.json'
    config = osp.join(repo_root, 'configs/rass/rass_tiny_demo.py')
    args = [config, '--split', 'val', '--from-txt', str(txt), '--tagger-name', 'dape_txt',
            '--out', str(out), '--cfg-options', f'val_dataloader.dataset.data_root={demo_data_root}']
    lq = [dict(type='Degrade', preset='rass_x1')]  # the val split is degraded (DegradedDataset)
    assert tool.main(args) == dict(tagged=2, skipped=0, identity='dape_txt', degradation=lq)
    assert ("read them with prompt=dict(type='tags', cache=" f"'{out}', tagger='dape_txt', "
            "degradation=[{'type': 'Degrade', 'preset': 'rass_x1'}])") in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data['format'] == TAGS_FORMAT and data['runs'][0]['image'] == 'pipeline'
    assert data['runs'][0]['degradation'][0]['deterministic'] is True  # the LQ val image
    assert data['taggers'] == {'dape_txt': dict(name='dape_txt', version=None,
                                                weights_sha256=None)}
    entries = PromptTagCache(str(out)).entries
    expected = {tag_entry_key(file_sha256(img), 'dape_txt', degradation_key(lq, img)):
                f'road, car{i},' for i, img in enumerate(images)}
    assert {k: e['tags'] for k, e in entries.items()} == expected
    assert tool.main(args) == dict(tagged=0, skipped=2, identity='dape_txt', degradation=lq)

    (txt / (osp.splitext(osp.basename(images[1]))[0] + '.txt')).unlink()
    with pytest.raises(FileNotFoundError, match='no prompt file'):
        tool.main(args + ['--overwrite'])
    with pytest.raises(ValueError, match='module:callable'):
        tool.load_tagger('os.path')
    with pytest.raises(SystemExit):  # the identity is part of every key: required
        tool.parse_args([config, '--from-txt', str(txt), '--out', str(out)])
    old = tmp_path / 'v1.json'
    old.write_text(json.dumps(dict(format='mmseg_rass.prompt_tags.v1', runs=[], images={})))
    with pytest.raises(ValueError, match='v1 tag cache, keyed by image bytes only.*new cache'):
        tool.main(args[:-4] + ['--out', str(old)] + args[-2:])
