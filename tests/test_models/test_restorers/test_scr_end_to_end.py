"""SCR through the real tools: train -> --resume -> test (--show-dir, attention maps) -> export."""
import glob
import os.path as osp
import runpy

import cv2
import torch

CONFIG = 'configs/scr/scr_tiny_demo.py'


def _data_options(root):
    opts = []
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False']
    return opts


def test_scr_train_resume_test_export(demo_data_root, tool_runner, repo_root, tmp_path):
    work = tmp_path / 'work'
    common = ['--work-dir', str(work), '--cfg-options', *_data_options(demo_data_root),
              'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=1',
              'train_dataloader.batch_size=1', 'crop_size=(64,128)',
              'train_dataloader.dataset.pipeline.3.crop_size=(64,128)']
    run = tool_runner(['tools/train.py', CONFIG, *common, 'train_cfg.max_iters=1',
                       'train_cfg.val_interval=10'])
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    for key in ('loss_mse', 'loss_scl_token', 'loss_scl_pixel'):
        assert key in log, key

    ckpt = torch.load(work / 'iter_1.pth', map_location='cpu', weights_only=False)
    assert ckpt['state_dict'] and all(
        'lora_' in k or k.startswith('unet.conv_in.base_layer.') for k in ckpt['state_dict'])

    run = tool_runner(['tools/train.py', CONFIG, *common, 'train_cfg.max_iters=2',
                       'train_cfg.val_interval=10', '--resume'])
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'resumed' in (run.stdout + run.stderr).lower() and (work / 'iter_2.pth').exists()

    show = tmp_path / 'show'
    run = tool_runner(['tools/test.py', CONFIG, str(work / 'iter_2.pth'), '--work-dir',
                       str(tmp_path / 'test'), '--show-dir', str(show), '--cfg-options',
                       *_data_options(demo_data_root), 'model.save_attention=True'])
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'PSNR' in run.stdout + run.stderr and 'SSIM' in run.stdout + run.stderr
    images = sorted(glob.glob(str(show / '**' / '*.png'), recursive=True))
    assert len(images) == 2
    drawn = cv2.imread(images[0])
    # a 64x128 image: LQ | restored | HQ, then one row per named class (mask | attention | overlay)
    assert drawn.shape[1] == 3 * 128 and drawn.shape[0] > 64 and drawn.shape[0] % 64 == 0

    from mmseg_rass.lora import load_scr_lora
    out = tmp_path / 'scr_lora.safetensors'
    export = runpy.run_path(osp.join(repo_root, 'tools', 'export_scr_lora.py'))['main']
    export([str(work / 'iter_2.pth'), str(out)])
    scr = load_scr_lora(out)
    assert scr.lora_config.r == 4 and scr.lora_state and osp.getsize(out) > 0
    assert scr.vae_lora_config is not None and scr.vae_lora_state  # OSEDiff's VAE-encoder LoRA
    torch.testing.assert_close(scr.conv_in_state['weight'],
                               torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=False)
                               ['state_dict']['unet.conv_in.base_layer.weight'])
