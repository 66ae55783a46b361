"""Robustness benchmark of any mmseg model on degraded images (mPC / rPC, table and plot).

Evaluate:  python tools/benchmark_robustness.py CONFIG CHECKPOINT
               [--families blur noise jpeg downsample mixed] [--severities 1 2 3 4 5]
               [--work-dir DIR] [--cfg-options KEY=VALUE ...]
Compare:   python tools/benchmark_robustness.py --compare A.json B.json ... [--names A B ...]
               [--work-dir DIR]

See docs/robustness.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from mmseg_rass.evaluation import robustness  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Evaluate an mmseg model on the clean test split and on every degradation '
        'family x severity (deterministic Degrade transform); or compare saved results.')
    parser.add_argument('config', nargs='?', help='mmseg config file (mmseg:: bases allowed)')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (or URL)')
    parser.add_argument('--families', nargs='+', default=list(robustness.FAMILIES),
                        metavar='FAMILY', help='degradation families (default: all of '
                        f'{" ".join(robustness.FAMILIES)})')
    parser.add_argument('--severities', nargs='+', type=int, default=list(robustness.SEVERITIES),
                        metavar='S', help='severities in 1-5 (default: 1 2 3 4 5)')
    parser.add_argument('--work-dir', help='output folder (default: work_dirs/robustness/'
                        '<config name>, or work_dirs/robustness_compare with --compare); '
                        'finished cells cached there are not evaluated again')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config settings, as in mmseg tools/test.py')
    parser.add_argument('--compare', nargs='+', metavar='JSON',
                        help='robustness.json files to render side by side (no evaluation)')
    parser.add_argument('--names', nargs='+', help='display names for --compare')
    args = parser.parse_args(argv)
    if args.compare is None and (args.config is None or args.checkpoint is None):
        parser.error('pass CONFIG and CHECKPOINT to evaluate, or --compare A.json B.json ...')
    if args.compare is not None and args.config is not None:
        parser.error('--compare renders saved results: pass no CONFIG/CHECKPOINT with it')
    return parser, args


def main(argv=None):
    parser, args = parse_args(argv)
    if args.compare is not None:
        try:
            paths = robustness.compare(args.compare, args.work_dir or 'work_dirs/'
                                       'robustness_compare', args.names)
        except (FileNotFoundError, ValueError) as e:
            parser.error(str(e))
        print(f'wrote {", ".join(paths)}')
        return
    try:
        robustness.check_request(args.config, args.checkpoint, args.families, args.severities)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    robustness.run_benchmark(args.config, args.checkpoint, args.families, args.severities,
                             args.work_dir, args.cfg_options)


if __name__ == '__main__':
    main()
