"""Generate the demo dataset (Cityscapes layout, street-scene-like, deterministic).

A folder already holding the demo data of the same generator version and settings (its
manifest says so) is kept as it is; any other folder content of the generator — an older
generator version, other settings, no manifest — is regenerated.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmseg_rass.datasets.demo_data import ensure_demo_cityscapes  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/demo_cityscapes', help='dataset root to write')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=512)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    start = time.time()
    what = (f'{args.num_train} train / {args.num_val} val, {args.height}x{args.width}, '
            f'seed {args.seed}')
    try:
        reason = ensure_demo_cityscapes(args.out, args.num_train, args.num_val, args.height,
                                        args.width, args.seed)
    except ValueError as err:
        sys.exit(f'make_demo_data: {err}')
    if reason is None:
        print(f'demo dataset {args.out} is up to date ({what}): not rewritten')
    else:
        print(f'demo dataset written to {args.out} ({what}) in {time.time() - start:.1f} s; '
              f'before: {reason}')


if __name__ == '__main__':
    main()
