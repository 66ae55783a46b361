"""Robustness benchmark of any mmseg model on corrupted images (mPC / rPC, table and plot).

Evaluate:  python tools/benchmark_robustness.py CONFIG CHECKPOINT
               [--families benchmark | all | noise blur weather digital holdout realesrgan |
                           gaussian_noise ... | realesrgan_blur ...] [--severities 1 2 3 4 5]
               [--work-dir DIR] [--cfg-options KEY=VALUE ...] [--non-strict]
               [--trust-checkpoint] [--launcher pytorch]
Several processes:  tools/dist_benchmark_robustness.sh CONFIG CHECKPOINT NPROC [options]
Compare:   python tools/benchmark_robustness.py --compare A.json B.json ... [--names A B ...]
               [--work-dir DIR]

See docs/robustness.md.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from mmseg_rass.evaluation import robustness  # noqa: E402
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, run_cli, usage_errors)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Evaluate an mmseg model on the clean test split and on every corruption '
        'x severity (ImageNet-C and Real-ESRGAN-style); or compare saved results.')
    parser.add_argument('config', nargs='?', help='mmseg config file (mmseg:: bases allowed)')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (or http(s) URL)')
    parser.add_argument('--families', nargs='+', default=list(robustness.DEFAULT_SELECTION),
                        metavar='NAME', help='corruptions or categories: '
                        f'{", ".join(robustness.GROUPS)} (benchmark = the 15 ImageNet-C '
                        'corruptions of noise/blur/weather/digital, all = the 19), any of '
                        f'{", ".join(robustness.CORRUPTIONS + robustness.REALESRGAN)} '
                        '(default: benchmark)')
    parser.add_argument('--severities', nargs='+', type=int, default=list(robustness.SEVERITIES),
                        metavar='S', help='severities in 1-5 (default: 1 2 3 4 5)')
    parser.add_argument('--work-dir', help='output folder (default: work_dirs/robustness/'
                        '<config name>, or work_dirs/robustness_compare with --compare); '
                        'finished cells cached there are reused while their content matches')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config settings, as in mmseg tools/test.py')
    parser.add_argument('--non-strict', action='store_true',
                        help='load a checkpoint whose keys do not all match the model (only '
                        'the matching weights; recorded in the result)')
    add_trust_checkpoint_argument(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (pytorch under torchrun: the test '
                        'images are split across the processes)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    parser.add_argument('--compare', nargs='+', metavar='JSON',
                        help='robustness.json files to render as one leaderboard (no '
                        'evaluation)')
    parser.add_argument('--names', nargs='+', help='display names for --compare')
    args = parser.parse_args(argv)
    if args.compare is None and (args.config is None or args.checkpoint is None):
        parser.error('pass CONFIG and CHECKPOINT to evaluate, or --compare A.json B.json ...')
    if args.compare is not None and args.config is not None:
        parser.error('--compare renders saved results: pass no CONFIG/CHECKPOINT with it')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return parser, args


def main(argv=None):
    parser, args = parse_args(argv)
    with usage_errors(parser):
        if args.compare is not None:
            paths = robustness.compare(args.compare, args.work_dir or 'work_dirs/'
                                       'robustness_compare', args.names)
            print(f'wrote {", ".join(paths)}')
            return
        apply_trust_checkpoint(args.trust_checkpoint)
        robustness.run_benchmark(args.config, args.checkpoint, args.families, args.severities,
                                 args.work_dir, args.cfg_options, strict=not args.non_strict,
                                 launcher=args.launcher)


if __name__ == '__main__':
    run_cli(main)
