"""SegSR through the real tools: train.py -> test.py (mIoU + PSNR in one run) -> refinement,
and parameter counts at SD2.1-base size on the meta device."""
import json
import os.path as osp
import runpy

import pytest

from mmseg_rass.tools_entry import run_cli

CONFIG = 'configs/segsr/segsr_tiny_demo.py'


def _options(data_root):
    opts = ['model.num_steps=2', 'default_hooks.logger.interval=1']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={data_root}',
                 f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False']
    return opts


@pytest.fixture(scope='module')
def checkpoint(demo_data_root, tool_runner, tmp_path_factory):
    work = tmp_path_factory.mktemp('segsr_train')
    run = tool_runner(['tools/train.py', CONFIG, '--work-dir', str(work), '--cfg-options',
                       *_options(demo_data_root), 'train_cfg.max_iters=1',
                       'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
                       'train_dataloader.batch_size=1'])
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    for key in ('loss_sr', 'seg.loss_ce', 'init.loss_sr', 'init.seg.loss_ce'):
        assert key in log, key
    return work / 'iter_1.pth'


def test_one_train_step_then_test_reports_miou_and_psnr(checkpoint, demo_data_root, tool_runner,
                                                        tmp_path):
    run = tool_runner(['tools/test.py', CONFIG, str(checkpoint), '--work-dir', str(tmp_path),
                       '--cfg-options', *_options(demo_data_root)])
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    final = [line for line in log.splitlines() if 'Iter(test) [2/2]' in line][-1]
    for key in ('mIoU:', 'aAcc:', 'PSNR:', 'SSIM:'):
        assert key in final, final


def test_refinement_tool_writes_table_plot_and_json(checkpoint, demo_data_root, repo_root,
                                                    tmp_path):
    tool = runpy.run_path(osp.join(repo_root, 'tools', 'segsr_refinement.py'))
    opts = [f'test_dataloader.dataset.data_root={demo_data_root}']
    results = tool['main'](['--out-dir', str(tmp_path), '--num-steps', '3', '--max-images', '1',
                            '--model', 'a', CONFIG, str(checkpoint),
                            '--model', 'b', CONFIG, str(checkpoint), '--cfg-options', *opts])
    assert [r['name'] for r in results] == ['a', 'b'] and results[0]['bridge']
    rows = results[0]['rows']
    assert [r['stage'] for r in rows] == ['step 1', 'step 2', 'step 3', 'final']
    assert results[0]['timesteps'] == [999, 666, 332]
    assert rows == results[1]['rows']  # same model, seeded sampling: identical curves
    assert all(0 <= r['mIoU'] <= 100 and r['PSNR'] > 0 for r in rows)
    table = (tmp_path / 'refinement.md').read_text()
    assert '| step 1 | 999 |' in table and 'a mIoU' in table and 'LQ input' in table
    assert (tmp_path / 'refinement.png').stat().st_size > 0
    assert json.loads((tmp_path / 'refinement.json').read_text())[0]['rows'] == rows
    with pytest.raises(SystemExit, match='^error: checkpoint file none.pth does not exist$'):
        run_cli(tool['main'], ['--out-dir', str(tmp_path), '--model', 'x', CONFIG, 'none.pth'])
    with pytest.raises(SystemExit, match='^error: .*fpn_r18_demo_cityscapes.py builds '
                       'EncoderDecoder, not SegSR'):
        run_cli(tool['main'], ['--out-dir', str(tmp_path), '--model', 'x',
                               'configs/baseline/fpn_r18_demo_cityscapes.py', str(checkpoint)])


def test_count_params_at_sd21_size(repo_root, capsys):
    tool = runpy.run_path(osp.join(repo_root, 'tools', 'count_params.py'))
    rows, (trainable, total) = tool['main'](
        [osp.join(repo_root, 'configs/segsr/segsr_sd21_cityscapes_lq.py')])
    table = {name: (tr, tot) for name, tr, tot in rows}
    assert 'built-in SD2.1-base architecture used' in capsys.readouterr().out
    assert table['srdm: UNet'][0] == 0 and abs(table['srdm: UNet'][1] - 865.899e6) < 1e3
    # conv_in widened from 4 to 4 (z_t) + 4 (z_lq) + 4 (DMB condition) input channels
    assert table['srdm: conv_in (widened)'] == (320 * 12 * 9 + 320, ) * 2
    assert table['srdm: LoRA'][0] == table['srdm: LoRA'][1] > 0
    assert table['srdm: VAE'][0] == 0
    assert table['backbone'][0] == table['backbone'][1] > 20e6  # MiT-B2
    assert table['bridge'][0] > 0 and table['segdm'][0] > 0
    assert trainable == sum(table[k][0] for k in ('srdm', 'backbone', 'segdm', 'bridge'))


X4_CONFIG = 'configs/segsr/segsr_tiny_x4_demo.py'


@pytest.fixture(scope='module')
def x4_checkpoint(demo_data_root, tool_runner, tmp_path_factory):
    """One training step of the x4 demo (64x128 demo images: HQ crops 64x128 -> LQ 16x32)."""
    work = tmp_path_factory.mktemp('segsr_x4_train')
    run = tool_runner(['tools/train.py', X4_CONFIG, '--work-dir', str(work), '--cfg-options',
                       *_options(demo_data_root), 'train_cfg.max_iters=1',
                       'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
                       'train_dataloader.batch_size=1',
                       'model.data_preprocessor.size=(16,32)',
                       'train_dataloader.dataset.pipeline.2.scale=(128,64)',
                       'train_dataloader.dataset.pipeline.3.crop_size=(64,128)'])
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    return work / 'iter_1.pth'


def test_x4_demo_test_reports_y_psnr_ssim_beside_bicubic(x4_checkpoint, demo_data_root,
                                                         tool_runner, tmp_path):
    run = tool_runner(['tools/test.py', X4_CONFIG, str(x4_checkpoint), '--work-dir',
                       str(tmp_path), '--cfg-options', *_options(demo_data_root)])
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    final = [line for line in log.splitlines() if 'Iter(test) [2/2]' in line][-1]
    values = dict(item.split(': ') for item in final.split('  ')[1:] if ': ' in item)
    for key in ('mIoU', 'PSNR', 'SSIM', 'bicubic_PSNR', 'bicubic_SSIM'):
        assert float(values[key]) > 0, final
    assert float(values['bicubic_PSNR']) != float(values['PSNR'])


def test_upscale_writes_exactly_4x_sr_and_segmentation(x4_checkpoint, repo_root, tool_loader,
                                                       tmp_path):
    import mmcv
    photo = mmcv.imread(osp.join(repo_root, 'tests/fixtures/real_lq/chelsea_cat.jpg'))
    mmcv.imwrite(photo[40:78, 60:110], str(tmp_path / 'in' / 'cat.png'))  # a 38x50 real crop
    tool = tool_loader('upscale')
    out = tmp_path / 'out'
    tool.main([X4_CONFIG, str(x4_checkpoint), str(tmp_path / 'in'), '--out-dir', str(out),
               '--tile', '24', '--overlap', '8', '--steps', '1'])
    sr, seg, vis = (mmcv.imread(str(out / kind / 'cat.png'), 'unchanged')
                    for kind in ('sr', 'seg', 'vis'))
    assert sr.shape == (152, 200, 3) and seg.shape == (152, 200) and vis.shape == (152, 400, 3)
    assert seg.max() < 19 and (vis[:, :200] == sr).all()
    with pytest.raises(SystemExit, match='^error: input .*none does not exist'):
        run_cli(tool.main, [X4_CONFIG, str(x4_checkpoint), str(tmp_path / 'none'), '--out-dir',
                            str(out)])
    with pytest.raises(SystemExit, match='^error: .* builds a EncoderDecoder, not a SegSR model'):
        run_cli(tool.main, ['configs/baseline/fpn_r18_demo_cityscapes.py', str(x4_checkpoint),
                            str(tmp_path / 'in'), '--out-dir', str(out)])


class _PointwiseSR:
    """A stand-in SegSR whose output at each pixel depends on that LQ pixel only."""
    scale, num_classes = 4, 3

    def sample(self, x, num_steps=None):
        import torch
        up = torch.nn.functional.interpolate(x, scale_factor=4, mode='nearest')
        return dict(restored=up, seg_logits=torch.cat([up[:, :2], up[:, :1] * 2], dim=1) * 3)


def test_tiles_blend_to_the_whole_image_result(tool_loader):
    import torch
    tool = tool_loader('upscale')
    assert tool.tile_starts(100, 32, 8) == [0, 24, 48, 68] and tool.tile_starts(20, 32, 8) == [0]
    img = torch.rand(1, 3, 37, 53) * 2 - 1
    whole_sr, whole_probs = tool.upscale_image(_PointwiseSR(), img, tile=0)
    calls = []
    sr, probs = tool.upscale_image(_PointwiseSR(), img, tile=16, overlap=6,
                                   progress=lambda: calls.append(1))
    assert len(calls) == tool.count_tiles(37, 53, 16, 6) == 4 * 5
    torch.testing.assert_close(sr, whole_sr)
    torch.testing.assert_close(probs, whole_probs)
    with pytest.raises(ValueError, match='--overlap 16 must be in'):
        tool.upscale_image(_PointwiseSR(), img, tile=16, overlap=16)
