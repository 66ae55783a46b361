"""Pretrain the project's small Stable Diffusion on the demo training images (cached).

    python tools/pretrain_tiny_sd.py                      # data/demo_cityscapes -> data/tiny_sd
    python tools/pretrain_tiny_sd.py --arch tiny --out data/tiny_sd_tiny \
        --vae steps=300 --unet steps=300 batch_size=16

Stage 1 trains the VAE as SD's KL-f8 autoencoder and sets its ``scaling_factor`` from the
latents' statistics; stage 2 trains the UNet as SD2.1-base's ε-prediction denoiser on those
latents, conditioned on captions naming the classes in each crop; the CLIP text encoder is
random and frozen. The result is a diffusers Stable Diffusion folder that every
``pretrained_model_path`` option loads like SD2.1-base. The folder's manifest holds its content
key (architecture, data file hashes, seed, hyper-parameters, code digest): a rerun with the same
key only checks and says so; any change rebuilds the folder. See docs/tiny_sd.md.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers the dataset class names)
from mmengine.config import DictAction  # noqa: E402

from mmseg_rass.models.diffusion import ARCHS  # noqa: E402
from mmseg_rass.models.tiny_sd_pretrain import (DEFAULT_OUT, UNET_DEFAULTS,  # noqa: E402
                                                VAE_DEFAULTS, TinySDError, ensure_tiny_sd)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/demo_cityscapes',
                        help='demo dataset root (tools/make_demo_data.py)')
    parser.add_argument('--out', default=DEFAULT_OUT, help='the Stable Diffusion folder to write')
    parser.add_argument('--arch', default='small', choices=sorted(set(ARCHS) - {'sd21'}))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--vae', nargs='+', action=DictAction, default={},
                        help=f'VAE stage settings key=value, defaults {VAE_DEFAULTS}')
    parser.add_argument('--unet', nargs='+', action=DictAction, default={},
                        help=f'UNet stage settings key=value, defaults {UNET_DEFAULTS}')
    parser.add_argument('--threads', type=int, help='torch threads (default: torch\'s own)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    try:
        manifest, reason = ensure_tiny_sd(args.data_root, args.out, args.arch, args.seed,
                                          args.vae, args.unet, args.threads,
                                          log=lambda line: print(line, flush=True))
    except TinySDError as err:
        sys.exit(f'pretrain_tiny_sd: {err}')
    if reason is not None:
        m = manifest['metrics']
        print(f'[tiny_sd] done in {time.time() - start:.0f} s: VAE PSNR {m["vae_psnr_val"]:.2f} '
              f'dB on the clean val images, scaling factor {m["scaling_factor"]:.5f}, UNet '
              f'final training ε-MSE {m["unet_loss_curve"][-1]["loss"]:.4f}; '
              f'pretrained_model_path={args.out}')


if __name__ == '__main__':
    main()
