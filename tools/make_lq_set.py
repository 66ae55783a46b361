"""Write a fixed degraded copy of an image split, with a manifest of every image's parameters.

Each image is degraded by ``Degrade(deterministic=True)``: the parameters are seeded from the
file's basename, the preset and the severity, so the copy is identical on every machine and
run (the manifest records each output's SHA-256 to check it). Labels are not copied: point the
config's ``seg_map_path`` at the original annotation folder. Outputs are lossless PNG by
default (RealLQDataset/ADE20K layouts: set ``img_suffix='.png'``).

    python tools/make_lq_set.py --src data/ade/ADEChallengeData2016/images/validation \
        --out data/ade20k_lq/images/validation --preset rass_x1
    python tools/make_lq_set.py --src data/cityscapes/leftImg8bit/val \
        --out data/cityscapes_blur3/leftImg8bit/val --preset blur --severity 3
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

IMG_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
MANIFEST_FORMAT = 'mmseg_rass.lq_manifest.v1'


def _value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', required=True, help='folder of clean images (searched '
                        'recursively; sub-folders are kept)')
    parser.add_argument('--out', required=True, help='folder for the degraded copies')
    parser.add_argument('--preset', default='rass_x1', help='rass_x1, realesrgan_x4 or a '
                        'family: blur, noise, jpeg, downsample, mixed')
    parser.add_argument('--severity', type=int, default=None, help='1-5, families only')
    parser.add_argument('--suffix', default='', help='only files ending with this (e.g. '
                        '_leftImg8bit.png); default: any image extension')
    parser.add_argument('--ext', default='.png', help='extension of the written images')
    parser.add_argument('--manifest', default=None, help='manifest path (default: '
                        '<out>/lq_manifest.json)')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                        help='degradation parameter overrides, values as JSON '
                        '(e.g. noise_range=[1,10] resize_back=true)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import cv2

    import mmseg_rass  # noqa: F401
    from mmseg_rass.transforms import Degrade
    overrides = {}
    for item in args.set:
        if '=' not in item:
            raise SystemExit(f'--set {item!r}: expected KEY=VALUE (e.g. noise_range=[1,10])')
        key, value = item.split('=', 1)
        overrides[key] = _value(value)
    try:
        degrade = Degrade(preset=args.preset, severity=args.severity, deterministic=True,
                          **overrides)
    except ValueError as e:
        raise SystemExit(str(e))
    if not osp.isdir(args.src):
        raise SystemExit(f'--src {args.src} is not a folder: pass the folder of clean images')
    files = sorted(
        osp.relpath(osp.join(root, f), args.src) for root, _, names in os.walk(args.src)
        for f in names
        if f.lower().endswith(IMG_EXTS) and f.endswith(args.suffix))
    if not files:
        raise SystemExit(f'no images{" ending with " + args.suffix if args.suffix else ""} '
                         f'under {args.src}')
    images = {}
    for i, rel in enumerate(files):
        img = cv2.imread(osp.join(args.src, rel), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f'cannot read image {osp.join(args.src, rel)}: corrupt or not an '
                             'image; remove it or fix it')
        out = degrade(dict(img=img, img_path=rel))
        dst_rel = osp.splitext(rel)[0] + args.ext
        dst = osp.join(args.out, dst_rel)
        os.makedirs(osp.dirname(dst), exist_ok=True)
        if not cv2.imwrite(dst, out['img']):
            raise SystemExit(f'cannot write {dst}')
        images[dst_rel] = dict(source=rel, shape=list(out['img'].shape),
                               sha256=hashlib.sha256(out['img'].tobytes()).hexdigest(),
                               params=out['degradation']['params'])
        print(f'[{i + 1}/{len(files)}] {dst_rel}', flush=True)
    manifest = dict(format=MANIFEST_FORMAT, preset=args.preset, severity=args.severity,
                    overrides=overrides, config=degrade.cfg, src=osp.abspath(args.src),
                    images=images)
    path = args.manifest or osp.join(args.out, 'lq_manifest.json')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(manifest, f, indent=1)
    print(f'wrote {len(images)} images to {args.out} and the manifest {path}')


if __name__ == '__main__':
    main()
