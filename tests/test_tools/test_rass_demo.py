"""The README's main job (tools/rass_demo.py): every stage runs and feeds the next one."""
import json
import math

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from mmseg_rass.lora import merge_scr_lora

# Minutes of work made seconds: 4 train / 2 val images of 64x128, a tiny SD pretrained for a
# few steps, one training iteration per stage.
TINY = ['--max-iters', '1', '--num-workers', '0', '--fps-images', '1', '--fps-warmup', '0',
        '--demo-data-options=--num-train 4 --num-val 2 --height 64 --width 128',
        '--tiny-sd-options=--arch tiny --vae steps=2 crop=32,64 batch_size=2 --unet steps=2 '
        'latent_crop=4,8 batch_size=2']
KEYS = ('vae_psnr', 'lq_psnr', 'scr_psnr', 'dt_miou', 'r2s_miou', 'ft_miou', 'rass_miou',
        'rass_noscr_miou', 'wall_seconds')


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory, tool_runner):
    root = tmp_path_factory.mktemp('rass_demo')
    args = ['--work-dir', str(root / 'work'), '--data-root', str(root / 'data'), '--tiny-sd',
            str(root / 'sd'), *TINY]
    proc = tool_runner(['tools/rass_demo.py', *args], timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, args, proc.stdout


def test_the_table_and_json_hold_every_row(demo_run):
    root, _, out = demo_run
    result = json.loads((root / 'work' / 'rass_demo.json').read_text())
    for key in KEYS:
        assert isinstance(result[key], float) and math.isfinite(result[key]), key
    assert 'LPIPS off' in result['scr_losses'] and result['max_iters'] == 1
    for row in ('FPN-R18 | DT', 'FPN-R18 | R2S', 'FPN-R18 | FT', 'RASS | SCR LoRA merged',
                'RASS w/o SCR', 'SCR restored', 'degraded input'):
        assert row in out
    assert f'mIoU: {result["rass_miou"]:.2f}' in out
    # the numbers are the protocol's cells, not a second evaluation
    protocol = json.loads((root / 'work' / 'lq_protocol' / 'lq_protocol.json').read_text())
    summary = protocol['summary']
    assert result['r2s_miou'] == summary['FPN-R18']['demo']['r2s_miou']
    assert result['rass_noscr_miou'] == summary['RASS w/o SCR']['demo']['ft_miou']
    assert result['scr_psnr'] == summary['FPN-R18']['demo']['restored_psnr']
    # R2S restores with the exported SCR LoRA
    spec = protocol['rows'][0]['spec']
    assert spec['restorer_checkpoint'] == result['scr_lora']


def _base_weights(unet):
    """The UNet's weights without the segmentation LoRA (peft's ``base_layer`` names undone)."""
    return {k.replace('.base_layer', ''): v for k, v in unet.state_dict().items()
            if '.lora_' not in k}


def test_rass_merges_the_exported_scr_lora_and_the_ablation_does_not(demo_run,
                                                                     one_torch_thread):
    from mmseg_rass.models.diffusion import build_unet
    root, _, _ = demo_run
    result = json.loads((root / 'work' / 'rass_demo.json').read_text())
    built = {stage: _base_weights(MODELS.build(
        Config.fromfile(result['configs'][stage]).model.backbone).unet)
        for stage in ('rass', 'rass_noscr')}
    plain = build_unet(result['tiny_sd']['path']).state_dict()
    merged = merge_scr_lora(build_unet(result['tiny_sd']['path']), result['scr_lora']).state_dict()
    changed = [k for k in plain if not torch.equal(plain[k], merged[k])]
    assert 'conv_in.weight' in changed and any('attn' in k for k in changed)
    assert set(built['rass']) == set(plain) == set(built['rass_noscr'])
    for k in plain:
        assert torch.equal(built['rass'][k], merged[k]), k
        assert torch.equal(built['rass_noscr'][k], plain[k]), k


def test_the_first_run_built_the_data_and_the_tiny_sd(demo_run):
    root, _, out = demo_run
    logs = root / 'work' / 'logs'
    assert 'building' in (logs / 'tiny_sd.log').read_text()
    assert 'demo dataset written to' in (logs / 'demo_data.log').read_text()
    assert '[demo] scr: LoRA exported' in out


def test_the_seeds_table_reads_a_real_run(demo_run, tool_loader, tmp_path):
    # benchmark_rass_demo spells the run format and the number keys on its own: a real run ties
    # them to what tools/rass_demo.py writes
    root, _, _ = demo_run
    path = root / 'work' / 'rass_demo.json'
    run = json.loads(path.read_text())
    result = tool_loader('benchmark_rass_demo').main(
        ['--results', str(path), '--work-dir', str(tmp_path / 'w')])
    assert result['runs'][0]['rass_miou'] == run['rass_miou']
    assert result['runs'][0]['device'] == run['device'] and 'threads' not in result['device']


def test_a_failed_stage_is_one_line_naming_its_log(tmp_path, tool_loader):
    tool = tool_loader('rass_demo')
    with pytest.raises(SystemExit) as exit_info:  # as `python tools/rass_demo.py` ends
        tool.run_cli(tool.main, ['--work-dir', str(tmp_path / 'w'), '--data-root',
                                 str(tmp_path / 'data'), '--demo-data-options=--num-train 0'])
    message = str(exit_info.value.code)
    assert message.startswith('error: stage demo_data failed (exit 1)') and '\n' not in message
    assert 'needs num_train, num_val >= 1' in message  # the tool's own last line
    assert str(tmp_path / 'w' / 'logs' / 'demo_data.log') in message


def _run_json(path, **numbers):
    run = dict(format='mmseg_rass.rass_demo.v1', seed=0, data_root='d', max_iters=None,
               scr_losses='MSE', device='cpu', tiny_sd=dict(key='k'), wall_seconds=100.0,
               vae_psnr=30.0, lq_psnr=25.0, scr_psnr=26.0, lq_ssim=0.7, scr_ssim=0.8,
               dt_miou=30.0, r2s_miou=20.0, ft_miou=40.0, rass_miou=45.0, rass_noscr_miou=44.0)
    run.update(numbers)
    path.write_text(json.dumps(run))
    return str(path)


def test_seeds_table_mean_std_and_verdicts(tmp_path, tool_loader):
    tool = tool_loader('benchmark_rass_demo')
    paths = [_run_json(tmp_path / 'a.json'),
             _run_json(tmp_path / 'b.json', seed=1, rass_miou=43.0, scr_psnr=24.0),
             _run_json(tmp_path / 'c.json', seed=2, rass_miou=41.0)]
    result = tool.main(['--results', *paths, '--work-dir', str(tmp_path / 'w')])
    stats = result['stats']['rass_miou']
    assert stats['mean'] == pytest.approx(43.0) and stats['std'] == pytest.approx(2.0)
    verdicts = {c['better'] + '>' + c['worse']: (c['differences'], c['verdict'])
                for c in result['claims']}
    assert verdicts['scr_psnr>lq_psnr'] == ([1.0, -1.0, 1.0], 'holds in 2 of 3 seeds')
    assert verdicts['rass_miou>ft_miou'][1] == 'holds in every seed'
    assert verdicts['rass_miou>rass_noscr_miou'] == ([1.0, -1.0, -3.0], 'holds in 1 of 3 seeds')
    table = (tmp_path / 'w' / 'rass_demo_seeds.md').read_text()
    assert '| rass_miou | 45.00 | 43.00 | 41.00 | 43.00 ± 2.00 |' in table


@pytest.mark.parametrize('change, message', [
    (dict(tiny_sd=dict(key='other')), r"differ in \['tiny_sd.key'\]"),
    (dict(max_iters=5), r"differ in \['max_iters'\]"),
    (dict(device='cuda (NVIDIA H100 80GB HBM3)'), r"differ in \['device'\]"),
    (dict(seed=0), r'seeds repeat'),
])
def test_seeds_table_refuses_runs_that_differ_in_more_than_the_seed(change, message, tmp_path,
                                                                    tool_loader):
    tool = tool_loader('benchmark_rass_demo')
    paths = [_run_json(tmp_path / 'a.json'),
             _run_json(tmp_path / 'b.json', **{'seed': 1, **change})]
    with pytest.raises(tool.SeedsError, match=message):
        tool.main(['--results', *paths, '--work-dir', str(tmp_path / 'w')])


def test_seeds_table_takes_runs_on_other_cpu_thread_counts(tmp_path, tool_loader):
    tool = tool_loader('benchmark_rass_demo')
    paths = [_run_json(tmp_path / 'a.json', device='cpu (x86_64, 2 threads)'),
             _run_json(tmp_path / 'b.json', seed=1, device='cpu (x86_64, 1 threads)')]
    result = tool.main(['--results', *paths, '--work-dir', str(tmp_path / 'w')])
    assert result['device'] == 'cpu (x86_64)'
    assert [run['device'] for run in result['runs']] == ['cpu (x86_64, 2 threads)',
                                                          'cpu (x86_64, 1 threads)']
    table = (tmp_path / 'w' / 'rass_demo_seeds.md').read_text()
    assert '| device | cpu (x86_64, 2 threads) | cpu (x86_64, 1 threads) | |' in table


def test_seeds_table_refuses_a_file_not_written_by_rass_demo(tmp_path, tool_loader):
    from mmseg_rass.evaluation.cells import BenchmarkError
    tool = tool_loader('benchmark_rass_demo')
    other = _run_json(tmp_path / 'b.json', seed=1, format='mmseg_rass.lq_protocol.v1')
    with pytest.raises(BenchmarkError, match=r'is not a result of tools/rass_demo\.py'):
        tool.main(['--results', _run_json(tmp_path / 'a.json'), other,
                   '--work-dir', str(tmp_path / 'w')])
