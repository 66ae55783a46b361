"""A malicious checkpoint through every loading path: its payload never runs without opt-in.

The payload (``exec`` of code writing a marker file) stands for arbitrary code. Each path must
refuse the file with one error naming it and the opt-in; ``--trust-checkpoint`` /
``MMSEG_RASS_TRUST_CHECKPOINTS=1`` load it fully (the payload runs: the file is really hostile).
"""
import functools
import http.server
import os.path as osp
import sys
import threading

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim.scheduler.param_scheduler import OneCycleParamScheduler
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint
from mmseg.registry import MODELS

from mmseg_rass.compat import shims
from mmseg_rass.compat import TRUST_CHECKPOINTS_ENV, UntrustedCheckpointError
from mmseg_rass.tools_entry import run_mmseg_tool

CONFIG = 'configs/baseline/fpn_r18_demo_cityscapes.py'


class Payload:
    """Unpickling this runs code (here: it writes ``marker``)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").write("payload ran")',)


def small_options(data_root):
    opts = ['train_cfg.max_iters=1', 'train_dataloader.batch_size=2', 'crop_size=(64,64)',
            'model.data_preprocessor.size=(64,64)']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={data_root}',
                 f'{split}_dataloader.num_workers=0', f'{split}_dataloader.persistent_workers=False']
    return opts


@pytest.fixture(scope='module')
def model_state(repo_root):
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(repo_root, CONFIG))
    return MODELS.build(cfg.model).state_dict()


@pytest.fixture
def evil(tmp_path, model_state, monkeypatch):
    """(checkpoint path, marker path): a real-looking checkpoint that runs code when unpickled."""
    # setenv first, so that teardown also removes what --trust-checkpoint sets in-process
    monkeypatch.setenv(TRUST_CHECKPOINTS_ENV, '')
    monkeypatch.delenv(TRUST_CHECKPOINTS_ENV)
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(dict(meta=dict(iter=1, epoch=0, payload=Payload(str(marker))),
                    state_dict=model_state), path)
    return str(path), marker


def assert_refused(error, path, marker):
    message = str(error)
    assert f'checkpoint {path}' in message and 'refers to `exec`' in message, message
    assert '--trust-checkpoint' in message and f'{TRUST_CHECKPOINTS_ENV}=1' in message
    assert not marker.exists()


def run_tool(monkeypatch, name, argv):
    """Run mmseg's tool in this process (argv restored after); return the SystemExit message."""
    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    with pytest.raises(SystemExit) as info:
        run_mmseg_tool(name, argv)
    return str(info.value)


def test_tools_test(evil, demo_data_root, tmp_path, monkeypatch, repo_root):
    path, marker = evil
    monkeypatch.chdir(repo_root)
    message = run_tool(monkeypatch, 'test.py', [CONFIG, path, '--work-dir', str(tmp_path / 'w'),
                                                '--cfg-options', *small_options(demo_data_root)])
    assert message.startswith('error: checkpoint')
    assert_refused(message, path, marker)


def test_tools_train_resume(evil, demo_data_root, tmp_path, monkeypatch, repo_root):
    path, marker = evil
    work_dir = tmp_path / 'w'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(path)  # what --resume picks up
    monkeypatch.chdir(repo_root)
    message = run_tool(monkeypatch, 'train.py', [CONFIG, '--work-dir', str(work_dir), '--resume',
                                                 '--cfg-options', *small_options(demo_data_root)])
    assert_refused(message, path, marker)


def test_load_from(evil, demo_data_root, tmp_path, repo_root):
    path, marker = evil
    cfg = Config.fromfile(osp.join(repo_root, CONFIG))
    cfg.train_cfg.max_iters = 1
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(demo_data_root)
        cfg[f'{split}_dataloader'].num_workers = 0
        cfg[f'{split}_dataloader'].persistent_workers = False
    cfg.work_dir = str(tmp_path / 'w')
    cfg.load_from = path
    runner = Runner.from_cfg(cfg)
    with pytest.raises(UntrustedCheckpointError) as info:
        runner.train()
    assert_refused(info.value, path, marker)


def test_benchmark_robustness(evil, demo_data_root, tmp_path, monkeypatch, repo_root, capsys,
                              tool_loader):
    path, marker = evil
    tool = tool_loader('benchmark_robustness')
    monkeypatch.chdir(repo_root)
    with pytest.raises(SystemExit) as info:  # the tool's one-line error, exit code 2
        tool.main([CONFIG, path, '--families', 'realesrgan_jpeg', '--severities', '1',
                   '--work-dir', str(tmp_path / 'bench'),
                   '--cfg-options', *small_options(demo_data_root)])
    assert info.value.code == 2
    assert_refused(capsys.readouterr().err, path, marker)
    assert not (tmp_path / 'bench').exists()


def test_export_scr_lora(evil, tmp_path, tool_loader):
    path, marker = evil
    tool = tool_loader('export_scr_lora')
    with pytest.raises(SystemExit) as info:
        tool.main([path, str(tmp_path / 'lora.safetensors')])
    assert_refused(info.value, path, marker)
    # with the flag the file is unpickled (the payload runs), then refused as a non-SCR file
    with pytest.raises(ValueError, match='carries no config'):
        tool.main([path, str(tmp_path / 'lora.safetensors'), '--trust-checkpoint'])
    assert marker.read_text() == 'payload ran'


def test_plain_mmengine_load_checkpoint(evil):
    path, marker = evil
    model = torch.nn.Conv2d(3, 3, 1)
    for load in (lambda: load_checkpoint(model, path), lambda: _load_checkpoint(path)):
        with pytest.raises(UntrustedCheckpointError) as info:
            load()
        assert_refused(info.value, path, marker)


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(folder, base URL) of a local HTTP server; torch hub downloads go under tmp_path."""
    folder = tmp_path / 'served'
    folder.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()


def test_remote_checkpoints_load_safely(evil, http_root):
    path, marker = evil
    folder, url = http_root
    (folder / 'evil.pth').write_bytes(open(path, 'rb').read())
    torch.save(dict(meta=dict(best=np.float64(0.5)), state_dict=dict(w=torch.ones(2))),
               folder / 'good.pth')
    with pytest.raises(UntrustedCheckpointError) as info:
        _load_checkpoint(f'{url}/evil.pth')
    assert_refused(info.value, f'{url}/evil.pth', marker)
    good = _load_checkpoint(f'{url}/good.pth')
    assert good['meta']['best'] == 0.5 and torch.equal(good['state_dict']['w'], torch.ones(2))


def test_trust_opt_in_runs_full_unpickling(evil, monkeypatch):
    path, marker = evil
    monkeypatch.setenv(TRUST_CHECKPOINTS_ENV, '1')
    _load_checkpoint(path)
    assert marker.read_text() == 'payload ran'


def test_tools_test_trust_flag(evil, demo_data_root, tmp_path, monkeypatch, repo_root):
    path, marker = evil
    monkeypatch.chdir(repo_root)
    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    run_mmseg_tool('test.py', [CONFIG, path, '--trust-checkpoint', '--work-dir', str(tmp_path / 'w'),
                               '--cfg-options', *small_options(demo_data_root)])
    assert marker.read_text() == 'payload ran'


def test_checkpoint_getattr_allows_only_what_mmengine_pickles(tmp_path):
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub('safety_test')
    hub.update_scalar('train/loss', 2.0)
    hub.update_scalar('train/loss', 4.0)
    path = tmp_path / 'hub.pth'
    torch.save(dict(message_hub=hub.state_dict(), meta=dict(seed=np.int64(3))), path)
    loaded = _load_checkpoint(str(path))
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 3.0
    assert loaded['meta']['seed'] == 3
    assert shims._checkpoint_getattr(HistoryBuffer, 'min') is HistoryBuffer.min
    one_cycle = shims._attribute_sources()[0]
    assert shims._checkpoint_getattr(one_cycle, '_annealing_cos') is \
        OneCycleParamScheduler._annealing_cos
    for obj, name in ((HistoryBuffer, '__init__'), (np.ndarray, 'tofile'), (torch, 'load'),
                      (one_cycle, 'step'), (OneCycleParamScheduler, '_annealing_cos')):
        with pytest.raises(Exception, match='not allowed in a checkpoint'):
            shims._checkpoint_getattr(obj, name)
    with pytest.raises(TypeError):  # a pickle cannot build a scheduler through it
        one_cycle()


def test_damaged_checkpoint_is_named(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(64)}}, good)
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(RuntimeError, match=r'cannot read checkpoint .*truncated\.pth.*damaged'):
        load_checkpoint(torch.nn.Linear(1, 1), str(bad))
