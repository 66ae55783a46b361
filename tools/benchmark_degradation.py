"""Speed of the degradation, side by side: basicsr 1.4.2's own functions vs. ``Degrade``.

The reference runs basicsr's code itself, loaded by path from its unpacked PyPI sdist (basicsr
1.4.2 does not import with current torchvision: ``torchvision.transforms.functional_tensor`` is
aliased to ``torchvision.transforms.functional``, nothing else is changed):
``RealESRGANDataset.__getitem__``'s kernel part (``random_mixed_kernels``,
``circular_lowpass_kernel``) then ``RealESRGANModel.feed_data``'s sequence (``filter2D``,
``F.interpolate``, ``random_add_gaussian_noise_pt`` / ``random_add_poisson_noise_pt``,
``DiffJPEG(differentiable=False)``), one image at a time, with the same preset parameters as
ours. ``USMSharp`` of the ground truth is part of ``feed_data`` but not of ``Degrade``: it is
left out of the like-for-like row and timed as its own row with ``--usm``.

Ours: ``Degrade`` per image (random mode, float32) and the batched path
(``DegradeSegDataPreProcessor.degrade`` for x1 presets, ``degrade_batch`` otherwise) on
batches of ``--batch`` images, reported per image. :func:`batched_vs_per_image` times ours
alone, the batched path on any device (e.g. CUDA, nvJPEG) against ``Degrade`` per image on the
CPU (``tools/gpu_check.py``).

    pip download basicsr==1.4.2 --no-deps --no-binary :all: --no-build-isolation -d /tmp/bsr
    tar xzf /tmp/bsr/basicsr-1.4.2.tar.gz -C /tmp/bsr
    python tools/benchmark_degradation.py --basicsr-src /tmp/bsr/basicsr-1.4.2 [--num 4]
        [--height 512 --width 1024] [--threads 1] [--batch 8] [--preset rass_x1] [--usm]
"""
import argparse
import importlib.util
import math
import os.path as osp
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

BASICSR_VERSION = '1.4.2'
BASICSR_FILES = dict(degradations='basicsr/data/degradations.py',
                     img_process_util='basicsr/utils/img_process_util.py',
                     diffjpeg='basicsr/utils/diffjpeg.py', version='basicsr/version.py')
RESIZE_MODES = ['area', 'bilinear', 'bicubic']


def load_basicsr(src):
    """basicsr's degradation modules, loaded by path from an unpacked sdist.

    Args:
        src (str): the sdist's root (the folder holding ``basicsr/``).

    Returns:
        dict: module name → module (``degradations``, ``img_process_util``, ``diffjpeg``).
    """
    if not src:
        raise SystemExit('benchmark_degradation: --basicsr-src is required (the unpacked '
                         f'basicsr-{BASICSR_VERSION} sdist; see this script\'s docstring)')
    for rel in BASICSR_FILES.values():
        if not osp.isfile(osp.join(src, rel)):
            raise SystemExit(f'benchmark_degradation: {osp.join(src, rel)} not found: '
                             f'--basicsr-src must be the unpacked basicsr-{BASICSR_VERSION} '
                             'sdist (the folder holding basicsr/)')
    import torchvision.transforms.functional as tv_functional
    sys.modules.setdefault('torchvision.transforms.functional_tensor', tv_functional)
    mods = {}
    for name, rel in BASICSR_FILES.items():
        spec = importlib.util.spec_from_file_location(f'basicsr_ref_{name}', osp.join(src, rel))
        mods[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mods[name])
    if mods['version'].__version__ != BASICSR_VERSION:
        raise SystemExit(f'benchmark_degradation: {src} holds basicsr '
                         f'{mods["version"].__version__}, this benchmark is for '
                         f'{BASICSR_VERSION}')
    return mods


def basicsr_opt(cfg):
    """The Real-ESRGAN dataset/model options equal to one of our configs."""
    opt = {k: cfg[k] for k in (
        'kernel_list', 'kernel_prob', 'blur_sigma', 'betag_range', 'betap_range', 'sinc_prob',
        'kernel_list2', 'kernel_prob2', 'blur_sigma2', 'betag_range2', 'betap_range2',
        'sinc_prob2', 'final_sinc_prob', 'resize_prob', 'resize_range', 'gaussian_noise_prob',
        'noise_range', 'poisson_scale_range', 'gray_noise_prob', 'jpeg_range',
        'second_blur_prob', 'resize_prob2', 'resize_range2', 'gaussian_noise_prob2',
        'noise_range2', 'poisson_scale_range2', 'gray_noise_prob2', 'jpeg_range2', 'scale')}
    opt['kernel_range'] = list(range(int(cfg['kernel_range'][0]), int(cfg['kernel_range'][1]) + 1,
                                     2))
    return opt


class BasicsrDegradation:
    """``RealESRGANDataset`` kernels + ``RealESRGANModel.feed_data`` on one image, basicsr code."""

    def __init__(self, mods, opt, usm=False):
        self.deg, self.opt = mods['degradations'], opt
        self.filter2d = mods['img_process_util'].filter2D
        self.jpeger = mods['diffjpeg'].DiffJPEG(differentiable=False)
        self.usm = mods['img_process_util'].USMSharp() if usm else None

    def _kernel(self, suffix, sinc_prob):
        o, size = self.opt, random.choice(self.opt['kernel_range'])
        if np.random.uniform() < sinc_prob:
            omega_c = np.random.uniform(np.pi / 3 if size < 13 else np.pi / 5, np.pi)
            kernel = self.deg.circular_lowpass_kernel(omega_c, size, pad_to=False)
        else:
            kernel = self.deg.random_mixed_kernels(
                o['kernel_list' + suffix], o['kernel_prob' + suffix], size,
                o['blur_sigma' + suffix], o['blur_sigma' + suffix], [-math.pi, math.pi],
                o['betag_range' + suffix], o['betap_range' + suffix], noise_range=None)
        pad = (21 - size) // 2
        return torch.FloatTensor(np.pad(kernel, ((pad, pad), (pad, pad))))

    def kernels(self):
        """``RealESRGANDataset.__getitem__``'s kernel1, kernel2 and sinc_kernel."""
        k1 = self._kernel('', self.opt['sinc_prob'])
        k2 = self._kernel('2', self.opt['sinc_prob2'])
        if np.random.uniform() < self.opt['final_sinc_prob']:
            size = random.choice(self.opt['kernel_range'])
            sinc = torch.FloatTensor(self.deg.circular_lowpass_kernel(
                np.random.uniform(np.pi / 3, np.pi), size, pad_to=21))
        else:
            sinc = torch.zeros(21, 21)
            sinc[10, 10] = 1
        return k1[None], k2[None], sinc[None]

    def _resize_scale(self, suffix):
        way = random.choices(['up', 'down', 'keep'], self.opt['resize_prob' + suffix])[0]
        lo, hi = self.opt['resize_range' + suffix]
        return {'up': lambda: np.random.uniform(1, hi), 'down': lambda: np.random.uniform(lo, 1),
                'keep': lambda: 1}[way]()

    def _noise(self, out, suffix):
        o = self.opt
        if np.random.uniform() < o['gaussian_noise_prob' + suffix]:
            return self.deg.random_add_gaussian_noise_pt(
                out, sigma_range=o['noise_range' + suffix], clip=True, rounds=False,
                gray_prob=o['gray_noise_prob' + suffix])
        return self.deg.random_add_poisson_noise_pt(
            out, scale_range=o['poisson_scale_range' + suffix],
            gray_prob=o['gray_noise_prob' + suffix], clip=True, rounds=False)

    def _jpeg(self, out, suffix):
        quality = out.new_zeros(out.size(0)).uniform_(*self.opt['jpeg_range' + suffix])
        return self.jpeger(torch.clamp(out, 0, 1), quality=quality)

    def __call__(self, gt):
        """(1, 3, H, W) RGB float image in [0, 1] → LQ image (``feed_data``'s ``self.lq``)."""
        k1, k2, sinc = self.kernels()
        h, w = gt.shape[2:4]
        s = self.opt['scale']
        out = self.filter2d(self.usm(gt) if self.usm is not None else gt, k1)
        out = F.interpolate(out, scale_factor=self._resize_scale(''),
                            mode=random.choice(RESIZE_MODES))
        out = self._jpeg(self._noise(out, ''), '')
        if np.random.uniform() < self.opt['second_blur_prob']:
            out = self.filter2d(out, k2)
        r2 = self._resize_scale('2')
        out = F.interpolate(out, size=(int(h / s * r2), int(w / s * r2)),
                            mode=random.choice(RESIZE_MODES))
        out = self._noise(out, '2')
        if np.random.uniform() < 0.5:
            out = F.interpolate(out, size=(h // s, w // s), mode=random.choice(RESIZE_MODES))
            out = self._jpeg(self.filter2d(out, sinc), '2')
        else:
            out = self._jpeg(out, '2')
            out = F.interpolate(out, size=(h // s, w // s), mode=random.choice(RESIZE_MODES))
            out = self.filter2d(out, sinc)
        return torch.clamp((out * 255.0).round(), 0, 255) / 255.


def _scene(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w * 200 + 20, yy / h * 180 + 30, (xx + yy) / (h + w) * 150 + 50], -1)
    img = img + rng.normal(0, 4, img.shape)
    for _ in range(40):
        y0, x0 = rng.integers(0, h - 40), rng.integers(0, w - 40)
        img[y0:y0 + rng.integers(8, 120), x0:x0 + rng.integers(8, 200)] = rng.integers(0, 256, 3)
    return img.round().clip(0, 255).astype(np.uint8)


def _seconds(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - t0


def batched_fn(preset, batch):
    """Our batched path on ``batch``: (3, H, W) uint8 tensors → degraded images."""
    from mmseg_rass.models.data_preprocessors import DegradeSegDataPreProcessor
    from mmseg_rass.transforms.degradation_pipeline import (degrade_batch, make_config,
                                                            sample_params)
    cfg = make_config(preset)
    if cfg['scale'] == 1:
        pre = DegradeSegDataPreProcessor(degradation=dict(preset=preset))
        return lambda: pre.degrade(batch), 'DegradeSegDataPreProcessor.degrade'

    def run():
        params = [sample_params(cfg, np.random.default_rng(np.random.randint(0, 2 ** 63 - 1)))
                  for _ in batch]
        return degrade_batch(torch.stack(batch), params, cfg)
    return run, 'degrade_batch'


def _sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def batched_vs_per_image(preset, height, width, batch, device, repeats=3):
    """Images/s of the batched path on ``device`` and of ``Degrade`` per image (on the CPU, as
    in a data loader), on one synthetic scene; fastest of ``repeats`` alternating runs, each
    re-seeded so that every run draws the same parameters.

    Returns:
        dict: ``batched_images_per_s``, ``per_image_images_per_s``, ``speedup``, ``batched_path``.
    """
    import mmseg_rass  # noqa: F401
    from mmseg_rass.transforms import Degrade
    img = _scene(height, width)
    per_image = Degrade(preset=preset)
    run, name = batched_fn(preset, [torch.from_numpy(img).permute(2, 0, 1).contiguous()
                                    .to(device)] * batch)

    def batched():
        run()
        _sync(device)

    sides = dict(batched=(batched, batch),
                 per_image=(lambda: per_image(dict(img=img, img_path='x.png')), 1))
    best = {}
    for fn, _ in sides.values():
        fn()  # warm-up (kernels, nvJPEG handles, caches)
    for _ in range(repeats):
        for key, (fn, per_call) in sides.items():
            np.random.seed(0)
            seconds = _seconds(fn, 1) / per_call
            best[key] = min(best.get(key, math.inf), seconds)
    return dict(batched_images_per_s=1 / best['batched'],
                per_image_images_per_s=1 / best['per_image'],
                speedup=best['per_image'] / best['batched'], batched_path=name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--basicsr-src', help='unpacked basicsr-1.4.2 sdist (holds basicsr/)')
    parser.add_argument('--preset', default='rass_x1', choices=['rass_x1', 'realesrgan_x4'])
    parser.add_argument('--num', type=int, default=4, help='images per side per repeat')
    parser.add_argument('--height', type=int, default=512)
    parser.add_argument('--width', type=int, default=1024)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (all sides)')
    parser.add_argument('--batch', type=int, default=8, help='batch of the batched path')
    parser.add_argument('--repeats', type=int, default=3, help='alternating runs; best is kept')
    parser.add_argument('--usm', action='store_true',
                        help='also time basicsr with USMSharp of the input, as feed_data runs')
    args = parser.parse_args(argv)
    mods = load_basicsr(args.basicsr_src)
    torch.set_num_threads(args.threads)
    import mmseg_rass  # noqa: F401
    from mmseg_rass.transforms import Degrade
    from mmseg_rass.transforms.degradation_pipeline import make_config

    img = _scene(args.height, args.width)
    rgb = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255.
    opt = basicsr_opt(make_config(args.preset))
    ours = Degrade(preset=args.preset)
    batch_run, batch_name = batched_fn(
        args.preset, [torch.from_numpy(img).permute(2, 0, 1).contiguous()] * args.batch)
    sides = {
        f'basicsr {BASICSR_VERSION} per image (its functions, DiffJPEG, no USM)':
            (lambda: BasicsrDegradation(mods, opt)(rgb), 1),
        'mmseg_rass Degrade per image (float32, OpenCV JPEG)':
            (lambda: ours(dict(img=img, img_path='x.png')), 1),
        f'mmseg_rass batched, batch {args.batch} ({batch_name})': (batch_run, args.batch),
    }
    if args.usm:
        sides[f'basicsr {BASICSR_VERSION} per image, with USMSharp (feed_data as is)'] = (
            lambda: BasicsrDegradation(mods, opt, usm=True)(rgb), 1)
    for fn, _ in sides.values():  # warm-up
        fn()
    runs = {name: [] for name in sides}
    for _ in range(args.repeats):  # alternate so load swings hit every side alike
        for name, (fn, per_call) in sides.items():
            # the same draws in every repeat: per-image and batched ours draw the same
            # parameters, basicsr draws its own from the same seeds
            random.seed(0)
            np.random.seed(0)
            torch.manual_seed(0)
            calls = max(1, math.ceil(args.num / per_call))
            runs[name].append(_seconds(fn, calls) / (calls * per_call))
    ref = min(runs[next(iter(sides))])
    print(f'CPU, preset {args.preset}, {args.height}x{args.width}, {args.threads} torch '
          f'thread(s), {args.num} images per side x {args.repeats} alternating runs; '
          f's/image (best; runs), speed vs basicsr:')
    for name, times in runs.items():
        print(f'  {name:<66} {min(times):6.3f} s ({", ".join(f"{t:.3f}" for t in times)})'
              f'  {ref / min(times):5.2f}x')


if __name__ == '__main__':
    main()
