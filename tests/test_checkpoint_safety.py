"""A malicious checkpoint through every loading path: its payload never runs without opt-in.

The payload (``exec`` of code writing a marker file) stands for arbitrary code. Each path must
refuse the file with one error naming it and the opt-in; ``--trust-checkpoint`` /
``MMSEG_RASS_TRUST_CHECKPOINTS=1`` load it fully (the payload runs: the file is really hostile).
"""
import functools
import http.server
import os.path as osp
import runpy
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

from mmseg_rass.compat import (TRUST_CHECKPOINTS_ENV, CheckpointReadError,
                               UntrustedCheckpointError, shims)
from mmseg_rass.compat.checkpoints import url_cache_dir
from mmseg_rass.tools_entry import run_cli, run_mmseg_tool

CONFIG = 'configs/baseline/fpn_r18_demo_cityscapes.py'
PHOTO = 'tests/fixtures/real_lq/chelsea_cat.jpg'


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
    with pytest.raises(SystemExit) as info:  # as `python tools/export_scr_lora.py` runs it
        run_cli(tool.main, [path, str(tmp_path / 'lora.safetensors')])
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


# -- every tool that loads a checkpoint: one line for a refused, empty or damaged file ---------
@pytest.fixture
def bad_checkpoints(tmp_path, evil):
    """{kind: path}: refused (needs full unpickling), empty (0 bytes), truncated."""
    path, _ = evil
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(path, 'rb').read()[:4096])
    return dict(refused=path, empty=str(empty), truncated=str(truncated))


def run_as_main(monkeypatch, repo_root, tool, argv):
    """Run ``tools/<tool>`` as ``python tools/<tool> argv`` does, in this process; return the
    message the interpreter would print on stderr before exiting with status 1."""
    monkeypatch.chdir(repo_root)
    monkeypatch.setattr(sys, 'argv', [tool, *argv])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(osp.join(repo_root, 'tools', tool), run_name='__main__')
    return info.value.code


def assert_one_line(message, *names):
    assert isinstance(message, str) and message.startswith('error: '), message  # status 1
    assert '\n' not in message and 'Traceback' not in message, message
    assert all(name in message for name in names), (names, message)


WHAT = dict(refused='--trust-checkpoint', empty='is empty (0 bytes)', truncated='damaged')


def fast_tool_argv(tool, checkpoint, tmp_path, repo_root):
    out = str(tmp_path / 'out')
    return dict(
        export_scr_lora=[checkpoint, out],
        convert_osediff_lora=[checkpoint, out],
        convert_rass_checkpoint=[checkpoint, out, '--arch', 'tiny'],
        extract_sam_priors=['configs/spd/spd_segformer-tiny_demo-cityscapes-lq.py', '--out', out,
                            '--sam-checkpoint', checkpoint],
        infer=[CONFIG, checkpoint, PHOTO, '--out-dir', out],
        upscale=['configs/segsr/segsr_tiny_x4_demo.py', checkpoint, PHOTO, '--out-dir', out],
        make_pseudo_labels=[CONFIG, checkpoint, 'tests/fixtures/real_lq', '--out-dir', out,
                            '--cache-dir', str(tmp_path / 'cache')],
    )[tool]


@pytest.mark.parametrize('kind', ['refused', 'empty', 'truncated'])
@pytest.mark.parametrize('tool', ['export_scr_lora', 'convert_osediff_lora',
                                  'convert_rass_checkpoint', 'extract_sam_priors', 'infer',
                                  'upscale', 'make_pseudo_labels'])
def test_tools_end_in_one_line_naming_the_checkpoint(tool, kind, bad_checkpoints, evil, tmp_path,
                                                     monkeypatch, repo_root):
    path = bad_checkpoints[kind]
    message = run_as_main(monkeypatch, repo_root, f'{tool}.py',
                          fast_tool_argv(tool, path, tmp_path, repo_root))
    assert_one_line(message, path, WHAT[kind])
    assert not evil[1].exists()  # the payload never ran


def test_refused_restorer_checkpoint_of_extract_sam_priors_is_one_line(bad_checkpoints, evil,
                                                                      tmp_path, monkeypatch,
                                                                      repo_root):
    path = bad_checkpoints['refused']
    message = run_as_main(monkeypatch, repo_root, 'extract_sam_priors.py', [
        'configs/spd/spd_segformer-tiny_demo-cityscapes-lq.py', '--out', str(tmp_path / 'out'),
        '--stand-in', '--prior-source', 'restorer', '--restorer-config',
        'configs/scr/scr_tiny_demo.py', '--restorer-checkpoint', path])
    assert_one_line(message, path, WHAT['refused'])
    assert not evil[1].exists()


@pytest.mark.parametrize('tool', ['export_scr_lora', 'convert_osediff_lora',
                                  'convert_rass_checkpoint', 'extract_sam_priors', 'infer',
                                  'upscale', 'make_pseudo_labels', 'segsr_refinement',
                                  'benchmark_sam_priors', 'train', 'test', 'benchmark_robustness',
                                  'lq_protocol'])
def test_every_tool_that_loads_a_checkpoint_takes_trust_checkpoint(tool, repo_root, monkeypatch,
                                                                   capsys):
    assert run_as_main(monkeypatch, repo_root, f'{tool}.py', ['--help']) == 0
    assert '--trust-checkpoint' in capsys.readouterr().out


@pytest.mark.parametrize('tool', ['infer', 'upscale', 'make_pseudo_labels'])
def test_a_missing_input_is_one_line_naming_it(tool, bad_checkpoints, tmp_path, monkeypatch,
                                               repo_root):
    """The image tools: a missing image (folder) ends in one line before any checkpoint is read
    (the checkpoint passed here would be refused)."""
    argv = fast_tool_argv(tool, bad_checkpoints['refused'], tmp_path, repo_root)
    missing = str(tmp_path / 'no_such_photos')
    argv[2] = missing
    message = run_as_main(monkeypatch, repo_root, f'{tool}.py', argv)
    assert_one_line(message, missing, 'does not exist')


@pytest.mark.parametrize('tool, options', [
    ('count_params', []), ('check_data', []), ('benchmark_rass', []),
    ('make_prompt_tags', ['--out', 'tags.json', '--from-txt', 'txt', '--tagger-name', 'ram',
                          '--tagger-version', '1']),
    ('extract_sam_priors', ['--out', 'priors', '--stand-in'])])
def test_a_missing_config_is_one_line_naming_it(tool, options, tmp_path, monkeypatch, repo_root):
    missing = str(tmp_path / 'no_such_config.py')
    message = run_as_main(monkeypatch, repo_root, f'{tool}.py', [missing, *options])
    assert_one_line(message, missing)


def test_a_tool_prints_one_line_on_stderr(bad_checkpoints, tmp_path, tool_runner):
    """The real interpreter, once: status 1 and exactly one line on stderr, no traceback."""
    proc = tool_runner(['tools/export_scr_lora.py', bad_checkpoints['empty'],
                        str(tmp_path / 'out.safetensors')])
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f'error: cannot read checkpoint {bad_checkpoints["empty"]}: it is empty (0 bytes) '
        '(EOFError); pass a .pth file written by torch.save / tools/train.py'], proc.stderr


# -- URLs ---------------------------------------------------------------------------------------
def test_tools_test_evaluates_a_url_checkpoint(http_root, model_state, demo_data_root, tmp_path,
                                               monkeypatch, repo_root, capsys):
    folder, url = http_root
    torch.save(dict(state_dict=model_state, meta=dict(iter=1)), folder / 'fpn.pth')
    monkeypatch.chdir(repo_root)
    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    run_mmseg_tool('test.py', [CONFIG, f'{url}/fpn.pth', '--work-dir', str(tmp_path / 'w'),
                               '--cfg-options', *small_options(demo_data_root)])
    assert 'mIoU' in capsys.readouterr().out
    cached = osp.join(url_cache_dir(f'{url}/fpn.pth'), 'fpn.pth')  # one folder per URL
    assert open(cached, 'rb').read() == (folder / 'fpn.pth').read_bytes()


def test_two_urls_with_one_file_name_load_their_own_checkpoint(http_root, monkeypatch):
    folder, url = http_root
    for name, value in (('a', 1.0), ('b', 2.0)):
        (folder / name).mkdir()
        torch.save(dict(state_dict=dict(w=torch.full((1,), value))), folder / name / 'model.pth')
    loaded = [_load_checkpoint(f'{url}/{name}/model.pth')['state_dict']['w'].item()
              for name in ('a', 'b')]
    assert loaded == [1.0, 2.0]
    # switched off, torch hub's cache (one file per file name) gives b the file of a
    monkeypatch.setenv('MMSEG_RASS_URL_CACHE', 'off')
    loaded = [_load_checkpoint(f'{url}/{name}/model.pth')['state_dict']['w'].item()
              for name in ('a', 'b')]
    assert loaded == [1.0, 1.0]


def test_a_damaged_or_missing_url_is_one_error_naming_it(http_root):
    folder, url = http_root
    (folder / 'cut.pth').write_bytes(b'PK\x03\x04 cut short')
    with pytest.raises(CheckpointReadError, match=rf'cannot read checkpoint {url}/cut.pth '
                       r'\(downloaded to .*cut\.pth: delete it to download again\)'):
        _load_checkpoint(f'{url}/cut.pth')
    with pytest.raises(CheckpointReadError, match=rf'{url}/none.pth cannot be downloaded .*404'):
        _load_checkpoint(f'{url}/none.pth')


# -- what mmengine itself writes loads without the opt-in --------------------------------------
def saved_and_loaded(tmp_path, obj):
    path = tmp_path / 'ckpt.pth'
    torch.save(obj, path)
    return _load_checkpoint(str(path))


def test_every_param_scheduler_state_loads(tmp_path):
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS
    needs = dict(OneCycle=dict(eta_max=0.1, total_steps=10), MultiStep=dict(milestones=[2]),
                 Step=dict(step_size=2), Exponential=dict(gamma=0.9), CosineAnnealing=dict(T_max=5),
                 CosineRestart=dict(periods=[2, 3], restart_weights=[1, 1], eta_min=0),
                 ReduceOnPlateau=dict(monitor='loss'))
    names = sorted(PARAM_SCHEDULERS.module_dict)
    assert len(names) >= 25 and 'OneCycleLR' in names
    for name in names:
        optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
        kwargs = next((v for k, v in needs.items() if name.startswith(k)), {})
        if name.endswith('ParamScheduler'):
            kwargs = dict(kwargs, param_name='lr')
        scheduler = PARAM_SCHEDULERS.get(name)(OptimWrapper(optimizer), **kwargs)
        for _ in range(3):
            optimizer.step()
            if name.startswith('ReduceOnPlateau'):
                scheduler.step({'loss': 1.0})
            else:
                scheduler.step()
        state = scheduler.state_dict()
        loaded = saved_and_loaded(tmp_path, dict(param_schedulers=[state]))['param_schedulers'][0]
        assert loaded.keys() == state.keys(), name
        if name.startswith('OneCycle'):  # holds a function reference: the real one comes back
            assert loaded['anneal_func'] is OneCycleParamScheduler._annealing_cos


def test_every_optimizer_and_the_amp_loss_scaler_state_loads(tmp_path):
    from mmengine.optim import OptimWrapper
    from mmengine.registry import OPTIMIZERS
    skipped = {'Optimizer', 'ZeroRedundancyOptimizer',  # a base class, a wrapper
               'SparseAdam', 'Adafactor', 'Muon'}  # need sparse gradients, no lr, 2-D params
    for name in sorted(set(OPTIMIZERS.module_dict) - skipped):
        model = torch.nn.Linear(2, 2)
        optimizer = OPTIMIZERS.get(name)(model.parameters(), lr=0.1)
        loss = lambda: model(torch.ones(3, 2)).sum()  # noqa: E731
        loss().backward()
        optimizer.step(loss) if name == 'LBFGS' else optimizer.step()
        state = OptimWrapper(optimizer).state_dict()
        state['loss_scaler'] = torch.amp.GradScaler('cpu').state_dict()  # AmpOptimWrapper's
        loaded = saved_and_loaded(tmp_path, dict(optimizer=state))['optimizer']
        assert loaded['param_groups'] == state['param_groups'], name
        assert loaded['loss_scaler'] == state['loss_scaler']


def test_runner_checkpoint_with_ema_onecycle_and_message_hub_resumes(tmp_path):
    from mmengine.testing.runner_test_case import ToyDataset, ToyMetric, ToyModel
    from mmengine.registry import DATASETS, METRICS
    from mmengine.registry import MODELS as ENGINE_MODELS
    for registry, cls in ((ENGINE_MODELS, ToyModel), (DATASETS, ToyDataset),
                          (METRICS, ToyMetric)):
        registry.register_module(module=cls, force=True)
    loader = dict(dataset=dict(type='ToyDataset'), sampler=dict(type='DefaultSampler'),
                  batch_size=2, num_workers=0)
    cfg = dict(model=dict(type='ToyModel'), work_dir=str(tmp_path), default_scope='mmengine',
               train_dataloader=loader, val_dataloader=loader, val_evaluator=[dict(
                   type='ToyMetric')], val_cfg=dict(), train_cfg=dict(by_epoch=False,
                                                                       max_iters=2, val_interval=2),
               optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.01)),
               param_scheduler=dict(type='OneCycleLR', eta_max=0.01, total_steps=4,
                                    by_epoch=False),
               custom_hooks=[dict(type='EMAHook')], randomness=dict(seed=0),
               default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                                        by_epoch=False)))
    Runner.from_cfg(Config(cfg)).train()
    ckpt = _load_checkpoint(str(tmp_path / 'iter_2.pth'))  # no opt-in
    assert {'ema_state_dict', 'param_schedulers', 'optimizer', 'message_hub', 'rng_state'} <= \
        set(ckpt)
    resumed = Runner.from_cfg(Config(dict(cfg, work_dir=str(tmp_path / 'r'),
                                          resume=True, load_from=str(tmp_path / 'iter_2.pth'),
                                          train_cfg=dict(by_epoch=False, max_iters=3))))
    resumed.train()
    assert resumed.iter == 3


# -- tools/train.py and tools/test.py: damaged checkpoints, bad transform parameters -----------
@pytest.mark.parametrize('how', ['test', 'resume', 'load_from'])
def test_damaged_checkpoint_through_train_and_test_is_one_line(how, bad_checkpoints, demo_data_root,
                                                               tmp_path, monkeypatch, repo_root):
    path = bad_checkpoints['truncated' if how != 'resume' else 'empty']
    work_dir = tmp_path / 'w'
    work_dir.mkdir()
    options = ['--work-dir', str(work_dir), '--cfg-options', *small_options(demo_data_root)]
    argv = dict(test=['test.py', CONFIG, path, *options],
                resume=['train.py', CONFIG, '--resume', *options],
                load_from=['train.py', CONFIG, *options, f'load_from={path}'])[how]
    (work_dir / 'last_checkpoint').write_text(path)  # what --resume picks up
    message = run_as_main(monkeypatch, repo_root, argv[0], argv[1:])
    assert_one_line(message, path, 'damaged' if how != 'resume' else 'is empty (0 bytes)')


def test_bad_degradation_parameter_through_train_is_one_line(demo_data_root, tmp_path,
                                                             monkeypatch, repo_root):
    config = tmp_path / 'bad_sigma.py'
    config.write_text(f"_base_ = '{repo_root}/{CONFIG}'\n"
                      "train_dataloader = dict(dataset=dict(pipeline=[dict(type='LoadImage'), "
                      "dict(type='Degrade', blur_sigma=(-1, 2)), dict(type='LoadAnnotations'), "
                      "dict(type='PackSegInputs')]))\n")
    message = run_as_main(monkeypatch, repo_root, 'train.py', [
        str(config), '--work-dir', str(tmp_path / 'w'), '--cfg-options',
        *small_options(demo_data_root)])
    assert_one_line(message, 'Degrade: blur_sigma=(-1, 2) must be > 0')
