"""A PNG grid of the degradations: clean, each preset, and each family at severities 1-5.

Every tile is ``Degrade(deterministic=True)`` of the same image (so the grid is reproducible).

    python tools/visualize_degradation.py --img data/demo_cityscapes/leftImg8bit/val/.../x.png \
        --out docs/degradation_grid.png [--tile 160 320]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def _label(tile, text):
    import cv2
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tile


def make_grid(img, name, tile_hw):
    """(rows × 6 tiles) grid image, uint8 BGR: row 0 clean + presets, then one row per family."""
    import cv2
    import numpy as np

    from mmseg_rass.transforms import Degrade
    from mmseg_rass.transforms.degradation_pipeline import FAMILIES
    h, w = tile_hw

    def tile(preset=None, severity=None, **kw):
        out = img if preset is None else Degrade(preset=preset, severity=severity,
                                                 deterministic=True, **kw)(
                                                     dict(img=img.copy(), img_path=name))['img']
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA if out.shape[0] > h
                         else cv2.INTER_NEAREST)
        text = 'clean' if preset is None else f'{preset}' + (f' s{severity}' if severity else '')
        return _label(np.ascontiguousarray(out), text)

    blank = np.full((h, w, 3), 255, np.uint8)
    rows = [[tile(), tile('rass_x1'), tile('realesrgan_x4', resize_back=True)] + [blank] * 3]
    for family in FAMILIES:
        rows.append([blank] + [tile(family, s) for s in range(1, 6)])
    return np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--img', default=None, help='image to degrade (default: a generated '
                        'demo image)')
    parser.add_argument('--out', default='degradation_grid.png')
    parser.add_argument('--tile', nargs=2, type=int, default=(128, 256), metavar=('H', 'W'))
    args = parser.parse_args(argv)
    import cv2

    import mmseg_rass  # noqa: F401
    if args.img:
        img = cv2.imread(args.img, cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f'cannot read image {args.img}: check the path')
        name = osp.basename(args.img)
    else:
        import tempfile

        from mmseg_rass.datasets.demo_data import make_demo_cityscapes
        with tempfile.TemporaryDirectory() as d:
            make_demo_cityscapes(d, num_train=1, num_val=1, height=256, width=512)
            path = next(osp.join(r, f) for r, _, fs in os.walk(osp.join(d, 'leftImg8bit', 'val'))
                        for f in fs)
            img, name = cv2.imread(path, cv2.IMREAD_COLOR), osp.basename(path)
    grid = make_grid(img, name, tuple(args.tile))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    if not cv2.imwrite(args.out, grid):
        raise SystemExit(f'cannot write {args.out}')
    print(f'wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})')


if __name__ == '__main__':
    main()
