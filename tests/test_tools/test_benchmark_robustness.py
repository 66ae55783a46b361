"""tools/benchmark_robustness.py: end-to-end run on demo data, --compare, and its CLI errors."""
import importlib.util
import json
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint
from mmseg.registry import MODELS

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


@pytest.fixture(scope='module')
def tiny_model(demo_data_root, tmp_path_factory):
    """(config path, checkpoint path) of a randomly initialised tiny SegFormer."""
    folder = tmp_path_factory.mktemp('tiny_segformer')
    config = folder / 'tiny_segformer.py'
    config.write_text(TINY_SEGFORMER.format(data_root=str(demo_data_root)))
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    model.init_weights()
    checkpoint = str(folder / 'tiny_segformer.pth')
    save_checkpoint(dict(meta=dict(), state_dict=model.state_dict()), checkpoint)
    return str(config), checkpoint


def _load_tool(repo_root):
    path = osp.join(repo_root, 'tools', 'benchmark_robustness.py')
    spec = importlib.util.spec_from_file_location('benchmark_robustness_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_end_to_end_on_demo_data(tiny_model, tool_runner, repo_root, tmp_path):
    config, checkpoint = tiny_model
    work_dir = tmp_path / 'bench'
    proc = tool_runner(['tools/benchmark_robustness.py', config, checkpoint, '--families',
                        'jpeg', '--severities', '1', '5', '--work-dir', str(work_dir)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for line in ('[1/3] clean: evaluating', '[2/3] jpeg severity 1: evaluating',
                 '[3/3] jpeg severity 5: mIoU'):
        assert line in proc.stdout
    assert sorted(p.name for p in (work_dir / 'cells').iterdir()) == [
        'clean.json', 'jpeg_s1.json', 'jpeg_s5.json']
    # each cell's runner dumped the config it ran: Degrade only in the degraded cells
    dumped = {cell: (work_dir / 'logs' / cell / 'tiny_segformer.py').read_text()
              for cell in ('clean', 'jpeg_s5')}
    assert 'Degrade' not in dumped['clean']
    assert "preset='jpeg'" in dumped['jpeg_s5'] and 'severity=5' in dumped['jpeg_s5']
    result = json.loads((work_dir / 'robustness.json').read_text())
    assert [(c['family'], c['severity']) for c in result['cells']] == [
        ('clean', 0), ('jpeg', 1), ('jpeg', 5)]
    assert len(result['classes']) == 19
    for cell in result['cells']:
        # mmseg's mIoU is the mean of the per-class IoUs (classes absent everywhere excluded)
        present = [v for v in cell['IoU'].values() if v is not None]
        assert cell['mIoU'] == pytest.approx(np.mean(present), abs=0.01)
        assert 0 <= cell['aAcc'] <= 100 and set(cell['Acc']) == set(result['classes'])
    summary = result['summary']
    degraded = [c['mIoU'] for c in result['cells'][1:]]
    assert summary['mPC'] == pytest.approx(np.mean(degraded))
    assert summary['clean_mIoU'] == result['cells'][0]['mIoU']
    if summary['clean_mIoU'] > 0:
        assert summary['rPC'] == pytest.approx(summary['mPC'] / summary['clean_mIoU'])
    table = (work_dir / 'robustness.md').read_text()
    assert f'| jpeg | {summary["clean_mIoU"]:.2f} | {degraded[0]:.2f} | {degraded[1]:.2f} |' \
        in table
    assert (work_dir / 'robustness.png').read_bytes()[:4] == b'\x89PNG'

    # --compare of the result with itself: side-by-side table and plot
    result_path = str(work_dir / 'robustness.json')
    _load_tool(repo_root).main(['--compare', result_path, result_path, '--names', 'first',
                                'second', '--work-dir', str(tmp_path / 'cmp')])
    assert '| | first | second |' in (tmp_path / 'cmp' / 'compare.md').read_text()
    assert (tmp_path / 'cmp' / 'compare.png').read_bytes()[:4] == b'\x89PNG'


@pytest.mark.parametrize('case, message', [
    ('config', 'config file .*missing.py does not exist'),
    ('checkpoint', 'checkpoint .*missing.pth does not exist'),
    ('family', "unknown degradation family 'fog'"),
    ('severity', 'severity 6 is out of range'),
    ('compare', 'result file .*missing.json does not exist'),
    ('nothing', 'pass CONFIG and CHECKPOINT'),
])
def test_cli_errors(case, message, repo_root, tmp_path, capsys):
    config, checkpoint = tmp_path / 'c.py', tmp_path / 'k.pth'
    config.write_text('')
    checkpoint.write_bytes(b'')
    config, checkpoint = str(config), str(checkpoint)
    argv = {
        'config': [str(tmp_path / 'missing.py'), checkpoint],
        'checkpoint': [config, str(tmp_path / 'missing.pth')],
        'family': [config, checkpoint, '--families', 'blur', 'fog'],
        'severity': [config, checkpoint, '--severities', '1', '6'],
        'compare': ['--compare', str(tmp_path / 'missing.json')],
        'nothing': [],
    }[case]
    with pytest.raises(SystemExit) as exit_info:
        _load_tool(repo_root).main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if 'error:' in line]  # after argparse's usage
    assert len(errors) == 1 and re.search(message, errors[0]), err
