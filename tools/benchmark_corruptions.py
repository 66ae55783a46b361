"""ImageNet-C corruptions: fidelity against ``imagecorruptions`` 1.1.2, and speed.

Fidelity (real photos, scikit-image's sample images resized to ``--size``):
  * deterministic corruptions: PSNR between this project's output and the reference's;
  * random ones: PSNR of the corrupted image to the clean one (mean ± std over images × seeds)
    and the standard deviation of the change, this project vs the reference.
Speed: per-image CPU time of both at ``--size`` (one torch/numpy thread each, same image, called
alternately, fastest of ``--repeats`` calls), their ratio and its geometric mean; on CUDA also
batched throughput (images/s).

    python tools/benchmark_corruptions.py [--corruptions NAME ...] [--size 512 1024]
        [--seeds 3] [--repeats 3] [--batch 16] [--skip-fidelity] [--skip-speed] [--out FILE.md]

The reference is a benchmark extra (``pip install imagecorruptions==1.1.2``). Three of its
corruptions do not run with numpy 2 / scikit-image ≥ 0.19 as shipped: ``glass_blur`` and
``gaussian_blur`` pass ``multichannel=`` to ``skimage.filters.gaussian`` (now
``channel_axis=-1``), ``fog`` uses ``np.float_`` (now ``np.float64``). This script gives the
reference module those two names back (only inside the reference module; nothing global).
"""
import argparse
import math
import os
import os.path as osp
import sys
import time
import types

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmseg_rass.transforms.imagenet_c import CORRUPTIONS, corrupt_batch  # noqa: E402

# corruptions whose reference output depends on no random draw
DETERMINISTIC = ('defocus_blur', 'zoom_blur', 'gaussian_blur', 'brightness', 'contrast',
                 'pixelate', 'jpeg_compression', 'saturate')


def load_reference():
    """``imagecorruptions.corrupt`` with the numpy-2 / scikit-image fixes described above."""
    try:
        import imagecorruptions
        from imagecorruptions import corruptions as ref
    except ImportError as e:
        raise SystemExit('the reference needs imagecorruptions: pip install '
                         f'imagecorruptions==1.1.2 ({e})')
    if not getattr(ref, '_mmseg_rass_fixed', False):
        gaussian = ref.gaussian

        def gaussian_compat(image, *args, multichannel=None, **kwargs):
            if multichannel:
                kwargs['channel_axis'] = -1
            return gaussian(image, *args, **kwargs)

        np_compat = types.ModuleType('numpy_with_float_')
        np_compat.__getattr__ = lambda name: np.float64 if name == 'float_' else getattr(np, name)
        ref.gaussian, ref.np = gaussian_compat, np_compat
        ref._mmseg_rass_fixed = True
    return imagecorruptions.corrupt


def sample_images(size):
    """scikit-image's colour sample photos, resized to ``size`` (h, w): list of RGB uint8."""
    import cv2
    from skimage import data
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    return [cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_AREA) for p in photos]


def ours(img, name, severity, seed):
    """This project's corruption of one RGB uint8 image."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    return corrupt_batch(x, name, severity, [seed])[0].permute(1, 2, 0).numpy()


def reference(corrupt, img, name, severity, seed):
    """The reference corruption of one RGB uint8 image, numpy's global generator seeded."""
    np.random.seed(seed)
    return corrupt(img, corruption_name=name, severity=severity)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def fidelity(names, images, corrupt, seeds):
    """Rows of the fidelity table (one per corruption and severity)."""
    rows = []
    for name in names:
        for severity in range(1, 6):
            if name in DETERMINISTIC:
                values = [psnr(ours(im, name, severity, 0), reference(corrupt, im, name,
                                                                      severity, 0))
                          for im in images]
                rows.append((name, severity, 'deterministic',
                             f'ours vs reference: PSNR {min(values):.1f} dB (min over '
                             f'{len(images)} photos)'))
                continue
            stats = {'ours': [], 'ref': []}
            delta = {'ours': [], 'ref': []}
            for im in images:
                for seed in range(seeds):
                    for key, out in (('ours', ours(im, name, severity, seed)),
                                     ('ref', reference(corrupt, im, name, severity, seed))):
                        stats[key].append(psnr(out, im))
                        delta[key].append(float(np.std(out.astype(np.float64) - im)))
            rows.append((name, severity, 'random', (
                f'PSNR to clean {np.mean(stats["ours"]):.2f} ± {np.std(stats["ours"]):.2f} vs '
                f'{np.mean(stats["ref"]):.2f} ± {np.std(stats["ref"]):.2f} dB; std of change '
                f'{np.mean(delta["ours"]):.1f} vs {np.mean(delta["ref"]):.1f}')))
            print(f'{name} s{severity}: {rows[-1][3]}', flush=True)
    return rows


def _time(fn, repeats):
    fn()  # warm-up (caches, lazy imports)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def speed(names, images, corrupt, repeats, severity=3):
    """Rows ``(name, ours_s, ref_s)``: seconds per image on CPU, one thread each.

    The two are called alternately and each keeps its fastest call (as ``timeit`` advises: the
    slower calls measure other jobs on the machine, not the code).
    """
    rows = []
    img = images[0]
    for name in names:
        calls = (lambda: ours(img, name, severity, 0),
                 lambda: reference(corrupt, img, name, severity, 0))
        best = [math.inf, math.inf]
        for fn in calls:
            fn()  # warm-up (caches, lazy imports)
        for _ in range(repeats):
            for i, fn in enumerate(calls):
                start = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - start)
        rows.append((name, *best))
        print(f'{name}: ours {1e3 * best[0]:.1f} ms, reference {1e3 * best[1]:.1f} ms, '
              f'{best[1] / best[0]:.1f}x', flush=True)
    return rows


def throughput(names, images, batch, repeats, device='cuda', severity=3):
    """Images/s of each corruption on ``device`` for a batch of ``batch`` uint8 images."""
    x = torch.from_numpy(np.stack([images[i % len(images)] for i in range(batch)]))
    x = x.permute(0, 3, 1, 2).to(device)
    rates = {}
    for name in names:
        def run():
            corrupt_batch(x, name, severity, list(range(batch)))
            if x.is_cuda:
                torch.cuda.synchronize()
        rates[name] = batch / _time(run, repeats)
        print(f'{name}: {rates[name]:.0f} images/s on {device} (batch {batch})', flush=True)
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--corruptions', nargs='+', default=list(CORRUPTIONS),
                        choices=CORRUPTIONS, metavar='NAME')
    parser.add_argument('--size', nargs=2, type=int, default=(512, 1024), metavar=('H', 'W'))
    parser.add_argument('--seeds', type=int, default=3, help='seeds per photo (random ones)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed calls per corruption (CPU: the fastest counts)')
    parser.add_argument('--batch', type=int, default=16, help='CUDA batch size')
    parser.add_argument('--skip-fidelity', action='store_true')
    parser.add_argument('--skip-speed', action='store_true')
    parser.add_argument('--out', help='also write the tables to this Markdown file')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    corrupt = load_reference()
    images = sample_images(tuple(args.size))
    lines = [f'# ImageNet-C corruptions at {args.size[0]}×{args.size[1]}', '']
    if not args.skip_fidelity:
        lines += ['| corruption | severity | kind | this project vs imagecorruptions 1.1.2 |',
                  '|---|---|---|---|']
        lines += [f'| {n} | {s} | {k} | {text} |'
                  for n, s, k, text in fidelity(args.corruptions, images, corrupt, args.seeds)]
        lines.append('')
    if not args.skip_speed:
        rows = speed(args.corruptions, images, corrupt, args.repeats)
        lines += ['| corruption | this project (ms/img) | imagecorruptions (ms/img) | speed-up |',
                  '|---|---|---|---|']
        lines += [f'| {n} | {1e3 * a:.1f} | {1e3 * b:.1f} | {b / a:.1f}× |' for n, a, b in rows]
        geomean = math.exp(np.mean([math.log(b / a) for _, a, b in rows]))
        lines += ['', f'geometric-mean speed-up {geomean:.1f}× (CPU, one thread each, severity 3)',
                  '']
        if torch.cuda.is_available():
            rates = throughput(args.corruptions, images, args.batch, args.repeats)
            mean_rate = len(rates) / sum(1 / r for r in rates.values())
            lines += [f'CUDA ({torch.cuda.get_device_name()}), batch {args.batch}: '
                      f'{mean_rate:.0f} images/s for the average corruption', '']
    text = '\n'.join(lines)
    print(text)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
