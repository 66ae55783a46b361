"""Write a config that mixes RASS (or SPT / SPD) into any mmseg config, e.g. a model-zoo one.

    python tools/mix_config.py mmseg::ocrnet/ocrnet_hr18_4xb2-40k_cityscapes-512x1024.py \
        --method rass -o my_config.py
    python tools/train.py my_config.py

The file inherits the given config through _base_ and states only the differences (derived
from the model, built on the meta device): the RASS backbone and its out_strides, the heads'
widths (list heads restated whole), the [-1, 1] input, the optimizer constructor and
custom_imports. See docs/rass.md ("A RASS backbone in any mmseg config") and
docs/sam_priors.md (SPT, SPD).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
from mmseg_rass.errors import ParameterError  # noqa: E402
from mmseg_rass.mixing import METHODS, SD21_FOLDER, VGG_WEIGHTS, mix_config  # noqa: E402
from mmseg_rass.tools_entry import run_cli, usage_errors  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='mmseg config: mmseg::<dir>/<name>.py or a path')
    parser.add_argument('--method', choices=METHODS, default='rass')
    parser.add_argument('-o', '--out', required=True, help='the config file to write')
    parser.add_argument('--pretrained-model-path', default=SD21_FOLDER,
                        help=f'RASS: local SD2.1-base folder (default {SD21_FOLDER})')
    parser.add_argument('--scr-lora', help='RASS: SCR LoRA file to merge')
    parser.add_argument('--arch', choices=['tiny'], help='RASS: random tiny Stable Diffusion '
                        'instead of the SD2.1-base folder (CPU demos, tests)')
    parser.add_argument('--out-channels', type=int,
                        help='RASS: width of the backbone outputs (default 512)')
    parser.add_argument('--backbone-strides', type=int, nargs='+', metavar='S',
                        help='strides of the replaced backbone\'s outputs, when its package is '
                        'not installed here (e.g. 4 8 16 32)')
    parser.add_argument('--vgg-weights', default=VGG_WEIGHTS,
                        help=f'SPD: VGG-16 weights of the SGR loss (default {VGG_WEIGHTS})')
    parser.add_argument('--force', action='store_true', help='overwrite OUT')
    args = parser.parse_args(argv)
    with usage_errors(parser):
        if osp.exists(args.out) and not args.force:
            raise ParameterError(f'{args.out} exists: pass --force to overwrite it')
        mixed = mix_config(args.config, args.method, arch=args.arch,
                           pretrained_model_path=args.pretrained_model_path,
                           scr_lora=args.scr_lora, out_channels=args.out_channels,
                           backbone_strides=args.backbone_strides, vgg_weights=args.vgg_weights,
                           out_dir=osp.dirname(osp.abspath(args.out)))
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(mixed.text)
    print(f'wrote {args.out}' + (f' ({"; ".join(mixed.notes)})' if mixed.notes else ''))
    return mixed


if __name__ == '__main__':
    run_cli(main)
