"""The evaluation-cell plumbing shared by the robustness benchmark and the LQ protocol: the
content-keyed cache, file digests that follow edits, per-URL checkpoint downloads and strict,
safe checkpoint loading."""
import json
import os
from collections import OrderedDict

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

from mmseg_rass.compat.checkpoints import url_cache_dir
from mmseg_rass.errors import (CheckpointNotFoundError, CheckpointReadError,
                               UntrustedCheckpointError)
from mmseg_rass.evaluation import cells


def test_cell_cache_names_what_changed(tmp_path):
    cache = cells.CellCache(str(tmp_path / 'cells'))
    key = dict(checkpoint='a' * 64, config='c', files='f', corruption=dict(type='Corrupt'))
    assert cache.get('set/row/dt', key) == (None, None)
    stored = cache.put('set/row/dt', key, dict(mIoU=1.0))
    assert stored['key'] == cells.content_key(key) and cells.strip_keys(stored) == dict(mIoU=1.0)
    assert cache.get('set/row/dt', key)[0]['mIoU'] == 1.0
    assert cache.get('set/row/dt', dict(key, checkpoint='b' * 64)) == (None, 'checkpoint')
    assert cache.get('set/row/dt', dict(key, config='d', files='g')) == (None, 'config/files')
    path = tmp_path / 'cells' / 'set' / 'row' / 'dt.json'
    path.write_text('{"mIoU": 1.0, "source": {}}')  # a cell of the first format
    assert cache.get('set/row/dt', key) == (None, 'older format')
    path.write_text('{"mI')  # killed while writing
    assert cache.get('set/row/dt', key) == (None, 'unreadable')


def test_file_digests_follow_edits_in_place(tmp_path, monkeypatch):
    image = tmp_path / 'a.png'
    image.write_bytes(b'\x00' * 64)
    memo = tmp_path / 'work' / 'file_digests.json'
    digests = cells.FileDigests(str(memo))
    first = digests(str(image))
    digests.save()
    stat = os.stat(image)
    image.write_bytes(b'\x01' * 64)  # same size, edited in place ...
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... mtime restored (cp -p)
    again = cells.FileDigests(str(memo))  # a new run reads the memo
    assert again(str(image)) != first  # ctime changed: hashed again
    calls, sha256 = [], cells.file_sha256
    monkeypatch.setattr(cells, 'file_sha256', lambda path: calls.append(path) or sha256(path))
    again(str(image))
    assert calls == []  # unchanged since: the remembered digest, the file is not read
    monkeypatch.undo()
    (tmp_path / 'work' / 'file_digests.json').write_text('{"broken')
    assert cells.FileDigests(str(memo))(str(image)) == again(str(image))


def test_data_and_referenced_file_digests(tmp_path):
    digests = cells.FileDigests()
    for name in ('x_img.png', 'x_label.png', 'lora.safetensors'):
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / 'sd').mkdir()
    (tmp_path / 'sd' / 'unet.bin').write_bytes(b'unet')
    files = [[('img_path', str(tmp_path / 'x_img.png')),
              ('seg_map_path', str(tmp_path / 'x_label.png'))]]
    before = cells.data_digest(files, digests)
    (tmp_path / 'x_label.png').write_bytes(b'another label')
    assert cells.data_digest(files, digests) != before
    model = dict(type='RASSBackbone', pretrained_model_path=str(tmp_path / 'sd'),
                 scr_lora=str(tmp_path / 'lora.safetensors'), prompt='empty',
                 layers=[dict(path=str(tmp_path / 'missing.pth'))])
    found = cells.referenced_files(model, digests)
    assert set(found) == {str(tmp_path / 'sd'), str(tmp_path / 'lora.safetensors')}
    (tmp_path / 'sd' / 'unet.bin').write_bytes(b'retrained')
    assert cells.referenced_files(model, digests)[str(tmp_path / 'sd')] != found[str(tmp_path /
                                                                                     'sd')]


def test_urls_with_the_same_file_name_get_their_own_download(http_folder, tmp_path,
                                                             monkeypatch):
    folder, base = http_folder
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    for sub, value in (('a', 1.0), ('b', 2.0)):
        (folder / sub).mkdir()
        torch.save(dict(state_dict=dict(w=torch.full((2, ), value))), folder / sub / 'model.pth')
    a = cells.local_checkpoint(f'{base}/a/model.pth')
    b = cells.local_checkpoint(f'{base}/b/model.pth')
    assert a != b and os.path.basename(a) == os.path.basename(b) == 'model.pth'
    assert torch.load(a)['state_dict']['w'][0] == 1.0
    assert torch.load(b)['state_dict']['w'][0] == 2.0
    assert cells.local_checkpoint(f'{base}/a/model.pth') == a  # downloaded once
    # the folder mmengine's http loader uses: it reads this download, it does not fetch again
    assert a == os.path.join(url_cache_dir(f'{base}/a/model.pth'), 'model.pth')
    os.remove(folder / 'a' / 'model.pth')
    assert _load_checkpoint(f'{base}/a/model.pth')['state_dict']['w'][0] == 1.0
    with pytest.raises(CheckpointReadError, match=rf'^checkpoint {base}/nothing.pth cannot be '
                       r'downloaded \(HTTP Error 404.*\): check the URL$'):
        cells.local_checkpoint(f'{base}/nothing.pth')


class _Tiny(torch.nn.Module):

    def __init__(self, width=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 1)
        self.head = torch.nn.Linear(width, 2)


def test_strict_checkpoint_loading(tmp_path):
    model = _Tiny()
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=_Tiny().state_dict(), meta=dict()), good)
    assert cells.load_checkpoint_checked(model, str(good)) == dict(
        strict=True, missing=0, unexpected=0, mismatched=0)
    assert torch.equal(model.conv.weight, torch.load(good)['state_dict']['conv.weight'])
    # saved from a DDP-wrapped model: the module. prefix is removed
    wrapped = tmp_path / 'wrapped.pth'
    torch.save(OrderedDict(('module.' + k, v) for k, v in _Tiny().state_dict().items()),
               wrapped)
    assert cells.load_checkpoint_checked(model, str(wrapped))['missing'] == 0
    # another model: one error listing the keys; nothing is loaded
    other = tmp_path / 'other.pth'
    state = _Tiny(width=5).state_dict()
    state.pop('head.bias')
    state['extra.weight'] = torch.zeros(1)
    torch.save(dict(state_dict=state), other)
    before = model.conv.weight.clone()
    with pytest.raises(cells.BenchmarkError) as error:
        cells.load_checkpoint_checked(model, str(other))
    message = str(error.value)
    assert '1 missing key (head.bias)' in message and '1 unexpected key (extra.weight)' in message
    assert '3 with another shape (conv.weight, conv.bias, head.weight)' in message
    assert '--non-strict' in message and torch.equal(model.conv.weight, before)
    with pytest.raises(cells.BenchmarkError) as error:  # a tool without --non-strict
        cells.load_checkpoint_checked(model, str(other), non_strict_option=False)
    assert '--non-strict' not in str(error.value)
    # --non-strict: what matches is loaded, the counts are reported
    assert cells.load_checkpoint_checked(model, str(other), strict=False) == dict(
        strict=False, missing=1, unexpected=1, mismatched=3)
    empty = tmp_path / 'empty.pth'
    torch.save(dict(state_dict={}), empty)
    with pytest.raises(cells.BenchmarkError, match=r'4 missing keys \(conv.weight, conv.bias, '
                       r'head.weight, … \(1 more\)\)'):
        cells.load_checkpoint_checked(model, str(empty))
    # compat's one-line errors, unchanged: one wording for each failure
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointReadError, match=r'^cannot read checkpoint .*junk\.pth: it is '
                       'damaged or not a torch checkpoint'):
        cells.load_checkpoint_checked(model, str(tmp_path / 'junk.pth'))
    with pytest.raises(CheckpointNotFoundError, match=r'^checkpoint .*none\.pth not found'):
        cells.load_checkpoint_checked(model, str(tmp_path / 'none.pth'))


def test_a_damaged_url_checkpoint_is_named_with_its_download(http_folder, tmp_path,
                                                             monkeypatch):
    folder, base = http_folder
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    (folder / 'cut.pth').write_bytes(b'PK\x03\x04 cut short')
    cached = os.path.join(url_cache_dir(f'{base}/cut.pth'), 'cut.pth')
    with pytest.raises(CheckpointReadError, match=rf'^cannot read checkpoint {base}/cut\.pth '
                       rf'\(downloaded to {cached}: delete it to download again\): it is damaged'):
        cells.load_checkpoint_checked(_Tiny(), f'{base}/cut.pth')
    torch.save(dict(state_dict=_Tiny().state_dict()), folder / 'cut.pth')  # fixed on the server
    os.remove(cached)
    assert cells.load_checkpoint_checked(_Tiny(), f'{base}/cut.pth')['missing'] == 0


class Payload:
    """An object safe loading refuses (any class outside the allowed globals)."""


def test_untrusted_checkpoint_is_refused(tmp_path, monkeypatch):
    path = tmp_path / 'pickled.pth'
    torch.save(dict(state_dict=_Tiny().state_dict(), extra=Payload()), path)
    monkeypatch.delenv('MMSEG_RASS_TRUST_CHECKPOINTS', raising=False)
    with pytest.raises(UntrustedCheckpointError, match=rf'^checkpoint {path} holds Python '
                       'objects that safe loading .*--trust-checkpoint'):
        cells.load_checkpoint_checked(_Tiny(), str(path))
    monkeypatch.setenv('MMSEG_RASS_TRUST_CHECKPOINTS', '1')
    assert cells.load_checkpoint_checked(_Tiny(), str(path))['missing'] == 0


def test_one_line_errors():
    error = RuntimeError('Error(s) in loading state_dict:\n\tmissing keys: a, b\n')
    assert cells.one_line(error) == 'RuntimeError: Error(s) in loading state_dict: missing keys: ' \
        'a, b'
    assert json.dumps(cells.one_line(ValueError())) == '"ValueError: ValueError()"'


def test_model_config_as_the_runner_builds_it():
    """mmengine's Runner gives a model dict without data_preprocessor the config's top-level
    one; the cells build the model the same way (tools/test.py's numbers)."""
    from mmengine.config import Config
    top = dict(type='SegDataPreProcessor', mean=[1.0] * 3)
    cfg = Config(dict(data_preprocessor=top, model=dict(type='EncoderDecoder')))
    assert cells.runner_model_cfg(cfg)['data_preprocessor'] == top
    own = dict(type='SegDataPreProcessor', mean=[2.0] * 3)
    cfg = Config(dict(data_preprocessor=top, model=dict(type='X', data_preprocessor=own)))
    assert cells.runner_model_cfg(cfg)['data_preprocessor'] == own
    assert 'data_preprocessor' not in cells.runner_model_cfg(Config(dict(model=dict(type='X'))))
