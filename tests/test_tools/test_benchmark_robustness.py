"""tools/benchmark_robustness.py on demo data: one run, 2 gloo processes against 1, the content
-keyed cell cache, strict checkpoints, and one-line CLI errors that leave no work dir."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmseg_rass.evaluation import robustness as rob
from mmseg_rass.sam.prior_io import file_sha256

# A model-zoo style config: inherits mmseg:: bases, mmseg's own dataset and LoadImageFromFile,
# no custom_imports (the tool loads the plug-in). SegFormer with 8-channel stages.
TINY_SEGFORMER = """
_base_ = ['mmseg::_base_/models/segformer_mit-b0.py', 'mmseg::_base_/default_runtime.py']
model = dict(
    backbone=dict(embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
    decode_head=dict(in_channels=[8, 8, 8, 8], channels=16))
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                 dict(type='PackSegInputs')]
test_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CityscapesDataset', data_root={data_root!r},
                 data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
                 pipeline=test_pipeline))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_cfg = dict(type='TestLoop')
"""
CELLS = ['--families', 'brightness', 'realesrgan_jpeg', '--severities', '5']


@pytest.fixture(scope='module')
def tiny_model(demo_data_root, tmp_path_factory, cached_mmseg_model_index, random_checkpoint):
    """(config path, checkpoint path) of a randomly initialised tiny SegFormer."""
    folder = tmp_path_factory.mktemp('tiny_segformer')
    config = folder / 'tiny_segformer.py'
    config.write_text(TINY_SEGFORMER.format(data_root=str(demo_data_root)))
    random_checkpoint(config, folder / 'tiny_segformer.pth')
    return str(config), str(folder / 'tiny_segformer.pth')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def runs(tiny_model, repo_root, tmp_path_factory):
    """The same cells by one process and by 2 gloo processes (tools/dist_benchmark_robustness.sh),
    run side by side."""
    config, checkpoint = tiny_model
    tmp = tmp_path_factory.mktemp('bench')
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()), OMP_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1')
    # cwd: mmengine's distributed result collection leaves a .dist_test folder there
    two = subprocess.Popen(['bash', f'{repo_root}/tools/dist_benchmark_robustness.sh', config,
                            checkpoint, '2', *CELLS, '--work-dir', str(tmp / 'two')],
                           cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    one = subprocess.run([sys.executable, 'tools/benchmark_robustness.py', config, checkpoint,
                          *CELLS, '--work-dir', str(tmp / 'one')], cwd=repo_root, env=env,
                         capture_output=True, text=True, timeout=600)
    out, err = two.communicate(timeout=600)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    assert two.returncode == 0, out[-3000:] + err[-3000:]
    return tmp, one, (out, err)


def test_one_run_on_demo_data(runs, repo_root):
    tmp, one, _ = runs
    work_dir = tmp / 'one'
    lines = one.stdout.splitlines()
    assert lines[0] == '3 cells (0 cached, 3 to evaluate) × 2 images; mmseg logs in ' \
        f'{work_dir}/logs'
    for i, cell in enumerate(('clean', 'brightness_s5', 'realesrgan_jpeg_s5'), 1):
        assert re.fullmatch(rf'\[{i}/3\] {cell}: mIoU \d+\.\d\d \(\d+\.\d s\), ETA \d\d:\d\d:\d\d',
                            lines[i]), lines
    assert lines[4].startswith('clean mIoU ') and len(lines) == 5
    assert 'mmengine' not in one.stdout + one.stderr  # mmseg's log goes to the file only
    assert len(one.stderr.splitlines()) <= 2, one.stderr
    logs = list((work_dir / 'logs').glob('*/*.log'))
    assert len(logs) == 1 and 'Iter(test)' in logs[0].read_text()
    assert sorted(p.name for p in (work_dir / 'cells').iterdir()) == [
        'brightness_s5.json', 'clean.json', 'realesrgan_jpeg_s5.json']
    result = json.loads((work_dir / 'robustness.json').read_text())
    assert [(c['corruption'], c['category'], c['severity']) for c in result['cells']] == [
        ('clean', 'clean', 0), ('brightness', 'weather', 5), ('realesrgan_jpeg', 'realesrgan', 5)]
    assert result['checkpoint_load'] == dict(strict=True, missing=0, unexpected=0, mismatched=0)
    assert result['num_images'] == 2 and result['processes'] == 1
    assert len(result['classes']) == 19
    for cell in result['cells']:
        # mmseg's mIoU is the mean of the per-class IoUs (classes absent everywhere excluded)
        present = [v for v in cell['IoU'].values() if v is not None]
        assert cell['mIoU'] == pytest.approx(np.mean(present), abs=0.01)
    summary, miou = result['summary'], [c['mIoU'] for c in result['cells']]
    assert summary['mPC'] == pytest.approx(np.mean(miou[1:]))
    assert summary['category_mPC'] == {'weather': miou[1], 'realesrgan': miou[2]}
    assert '| weather | brightness | ' + f'{miou[1]:.2f} |' in \
        (work_dir / 'robustness.md').read_text()
    assert (work_dir / 'robustness.png').read_bytes()[:4] == b'\x89PNG'


def test_two_gloo_processes_give_the_numbers_of_one(runs):
    tmp, _, (out, err) = runs
    one = json.loads((tmp / 'one' / 'robustness.json').read_text())
    two = json.loads((tmp / 'two' / 'robustness.json').read_text())
    assert two['processes'] == 2 and two['num_images'] == 2
    for a, b in zip(one['cells'], two['cells']):
        assert (a['corruption'], a['mIoU'], a['aAcc'], a['IoU']) == (
            b['corruption'], b['mIoU'], b['aAcc'], b['IoU'])
    assert out.count('[1/3] clean') == 1  # rank 0 reports, rank 1 is silent
    assert 'Traceback' not in err


def test_cache_follows_checkpoint_config_and_files(tiny_model, demo_data_root, tmp_path,
                                                   monkeypatch, capsys, random_checkpoint):
    """Cells are reused while checkpoint bytes, config text and test files are unchanged."""
    config, checkpoint = tiny_model
    data = tmp_path / 'data'
    shutil.copytree(demo_data_root, data)
    config_text = open(config).read().replace(repr(str(demo_data_root)), repr(str(data)))
    (tmp_path / 'm.py').write_text(config_text)
    ckpt = tmp_path / 'm.pth'
    shutil.copy(checkpoint, ckpt)
    evaluated = []
    original = rob.evaluate_cell

    def counting(runner, cfg, transform):
        evaluated.append(transform and transform['corruption'])
        return original(runner, cfg, transform)

    monkeypatch.setattr(rob, 'evaluate_cell', counting)

    def run():
        evaluated.clear()
        capsys.readouterr()
        result = rob.run_benchmark(str(tmp_path / 'm.py'), str(ckpt), ['brightness'], [2],
                                   str(tmp_path / 'wd'))
        return result, capsys.readouterr().out

    first, _ = run()
    assert evaluated == [None, 'brightness']
    again, out = run()
    assert evaluated == [] and '2 cells (2 cached, 0 to evaluate)' in out
    assert again['summary'] == first['summary']
    random_checkpoint(tmp_path / 'm.py', ckpt, seed=1)  # retrained to the same file name
    _, out = run()
    assert evaluated == [None, 'brightness']
    assert 'note: 2 cached cells' in out and 'checkpoint changed: clean, brightness_s2' in out
    (tmp_path / 'm.py').write_text(config_text + 'randomness = dict(seed=7)\n')
    _, out = run()
    assert len(evaluated) == 2 and 'config changed' in out
    digest = rob.transform_code_digest  # the corruption code changed: only its cells recompute
    monkeypatch.setattr(rob, 'transform_code_digest', lambda t: t and 'x' + digest(t)[1:])
    _, out = run()
    assert evaluated == ['brightness'] and 'code changed: brightness_s2' in out
    monkeypatch.setattr(rob, 'transform_code_digest', digest)
    run()
    val = data / 'leftImg8bit' / 'val' / 'demo_city'
    image = sorted(val.iterdir())[0]
    shutil.copy(image, val / image.name.replace('demo_city_', 'demo_city_9'))
    label = sorted((data / 'gtFine' / 'val' / 'demo_city').iterdir())[0]
    shutil.copy(label, label.parent / label.name.replace('demo_city_', 'demo_city_9'))
    result, out = run()
    assert len(evaluated) == 2 and 'files changed' in out and result['num_images'] == 3
    # a label edited in place (same name, same size, mtime put back): evaluated again
    stat = os.stat(label)
    edited = np.array(Image.open(label))
    edited[:8] = 255
    Image.fromarray(edited).save(label)
    os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed, out = run()
    assert len(evaluated) == 2 and 'files changed' in out
    assert changed['cells'][0]['aAcc'] != result['cells'][0]['aAcc']


def test_urls_with_the_same_file_name_give_each_model_its_numbers(tiny_model, http_folder,
                                                                  tmp_path, monkeypatch,
                                                                  random_checkpoint):
    config, _ = tiny_model
    folder, base = http_folder
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    for seed, sub in enumerate(('a', 'b')):
        (folder / sub).mkdir()
        random_checkpoint(config, folder / sub / 'model.pth', seed=seed)
    results = [rob.run_benchmark(config, f'{base}/{sub}/model.pth', ['brightness'], [1],
                                 str(tmp_path / 'wd')) for sub in ('a', 'b')]
    digests = [r['checkpoint_sha256'] for r in results]
    assert digests == [file_sha256(folder / sub / 'model.pth') for sub in ('a', 'b')]
    a, b = ([(c['aAcc'], c['mIoU']) for c in r['cells']] for r in results)
    assert a != b  # model B is evaluated, not reported with model A's cached numbers


def test_mismatched_checkpoint_fails_and_non_strict_is_recorded(tiny_model, tool_loader,
                                                                tmp_path, capsys):
    config, _ = tiny_model
    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict=torch.nn.Linear(2, 2).state_dict()), other)
    work_dir = tmp_path / 'wd'
    argv = [config, str(other), '--families', 'contrast', '--severities', '1', '--work-dir',
            str(work_dir)]
    with pytest.raises(SystemExit) as exit_info:
        tool_loader('benchmark_robustness').main(argv)
    assert exit_info.value.code == 2 and not work_dir.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.search(r'does not match the model of the config: \d+ missing keys '
                     r'\(backbone\..*2 unexpected keys \(weight, bias\).*--non-strict', err)
    tool_loader('benchmark_robustness').main(argv + ['--non-strict'])
    result = json.loads((work_dir / 'robustness.json').read_text())
    assert result['checkpoint_load']['strict'] is False
    assert result['checkpoint_load']['unexpected'] == 2
    assert '--non-strict: ' in capsys.readouterr().out


@pytest.mark.parametrize('case, message', [
    ('config', 'config file .*missing.py does not exist'),
    ('checkpoint', 'checkpoint .*missing.pth does not exist'),
    ('renamed', "'downsample' is now named 'realesrgan_downsample'"),
    ('family', "unknown corruption 'rain'"),
    ('severity', 'severity 6 is out of range'),
    ('broken', 'config .*broken.py cannot be loaded'),
    ('data', 'test dataset of .* cannot be built .*data_root'),
    ('compare', 'result file .*missing.json does not exist'),
    ('nothing', 'pass CONFIG and CHECKPOINT'),
])
def test_cli_errors(case, message, tiny_model, tool_loader, tmp_path, capsys):
    config, checkpoint = tiny_model
    broken = tmp_path / 'broken.py'
    broken.write_text("_base_ = ['mmseg::_base_/default_runtime.py']\nmodel = dict(\n")
    work_dir = tmp_path / 'wd'
    argv = {
        'config': [str(tmp_path / 'missing.py'), checkpoint],
        'checkpoint': [config, str(tmp_path / 'missing.pth')],
        'renamed': [config, checkpoint, '--families', 'fog', 'downsample'],
        'family': [config, checkpoint, '--families', 'noise', 'rain'],
        'severity': [config, checkpoint, '--severities', '1', '6'],
        'broken': [str(broken), checkpoint],
        'data': [config, checkpoint, '--cfg-options',
                 f'test_dataloader.dataset.data_root={tmp_path / "nowhere"}'],
        'compare': ['--compare', str(tmp_path / 'missing.json')],
        'nothing': [],
    }[case]
    if case != 'compare':
        argv += ['--work-dir', str(work_dir)]
    with pytest.raises(SystemExit) as exit_info:
        tool_loader('benchmark_robustness').main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if 'error:' in line]  # after argparse's usage
    assert len(errors) == 1 and re.search(message, errors[0]), err
    assert 'Traceback' not in err and not work_dir.exists()
