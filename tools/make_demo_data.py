"""Generate the demo dataset (Cityscapes layout, street-scene-like, deterministic)."""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmseg_rass.datasets.demo_data import make_demo_cityscapes  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/demo_cityscapes', help='dataset root to write')
    parser.add_argument('--num-train', type=int, default=24)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=512)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    make_demo_cityscapes(args.out, args.num_train, args.num_val, args.height, args.width, args.seed)
    print(f'demo dataset written to {args.out} ({args.num_train} train / {args.num_val} val, '
          f'{args.height}x{args.width})')


if __name__ == '__main__':
    main()
