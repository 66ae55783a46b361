"""Speed of the degradation: ours vs. a faithful re-statement of the reference per-image pipeline.

The reference is Real-ESRGAN's second-order degradation as RASS uses it, one image at a time:
kernels built in numpy by basicsr's ``degradations.py`` functions in the dataset's
``__getitem__``, then ``RealESRGANModel.feed_data`` in torch with basicsr's ``filter2D``,
``random_add_*_noise_pt`` and ``DiffJPEG(differentiable=False)`` (basicsr 1.4.2 does not import
with current torchvision, so the functions are re-stated below; the USM sharpening of the
ground truth is left out of both). Ours is ``Degrade(preset='rass_x1')`` (random mode, float32)
and, where CUDA exists, the batched ``DegradeSegDataPreProcessor`` path.

    python tools/benchmark_degradation.py [--num 10] [--height 512 --width 1024] [--threads 1]
"""
import argparse
import math
import os.path as osp
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

# ---------------------------------------------------------------- reference (basicsr re-stated)
KERNEL_LIST = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
               'plateau_aniso']
KERNEL_PROB = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
OPT = dict(resize_prob=[0.2, 0.7, 0.1], resize_range=[0.15, 1.5], gaussian_noise_prob=0.5,
           noise_range=[1, 30], poisson_scale_range=[0.05, 3], gray_noise_prob=0.4,
           jpeg_range=[30, 95], second_blur_prob=0.8, resize_prob2=[0.3, 0.4, 0.3],
           resize_range2=[0.3, 1.2], gaussian_noise_prob2=0.5, noise_range2=[1, 25],
           poisson_scale_range2=[0.05, 2.5], gray_noise_prob2=0.4, jpeg_range2=[30, 95], scale=1)


def _mesh_grid(k):
    ax = np.arange(-k // 2 + 1., k // 2 + 1.)
    xx, yy = np.meshgrid(ax, ax)
    return np.hstack((xx.reshape((k * k, 1)), yy.reshape(k * k, 1))).reshape(k, k, 2)


def _sigma_matrix2(sx, sy, theta):
    d = np.array([[sx ** 2, 0], [0, sy ** 2]])
    u = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return np.dot(u, np.dot(d, u.T))


def _quad(k, sx, sy, theta):
    grid = _mesh_grid(k)
    inv = np.linalg.inv(_sigma_matrix2(sx, sy, theta))
    return np.sum(np.dot(grid, inv) * grid, 2)


def _random_kernel(k, sigma, betag=(0.5, 4), betap=(1, 2)):
    kernel_type = random.choices(KERNEL_LIST, KERNEL_PROB)[0]
    sx = np.random.uniform(*sigma)
    if kernel_type.endswith('aniso'):
        sy, theta = np.random.uniform(*sigma), np.random.uniform(-math.pi, math.pi)
    else:
        sy, theta = sx, 0
    q = _quad(k, sx, sy, theta)
    if kernel_type.startswith('generalized'):
        b = np.random.uniform(betag[0], 1) if np.random.uniform() < 0.5 else np.random.uniform(
            1, betag[1])
        kernel = np.exp(-0.5 * np.power(q, b))
    elif kernel_type.startswith('plateau'):
        b = np.random.uniform(betap[0], 1) if np.random.uniform() < 0.5 else np.random.uniform(
            1, betap[1])
        kernel = np.reciprocal(np.power(q, b) + 1)
    else:
        kernel = np.exp(-0.5 * q)
    return kernel / np.sum(kernel)


def _circular_lowpass_kernel(cutoff, k, pad_to=0):
    c = (k - 1) / 2
    with np.errstate(divide='ignore', invalid='ignore'):
        kernel = np.fromfunction(
            lambda x, y: cutoff * special.j1(cutoff * np.sqrt((x - c) ** 2 + (y - c) ** 2)) /
            (2 * np.pi * np.sqrt((x - c) ** 2 + (y - c) ** 2)), [k, k])
    kernel[(k - 1) // 2, (k - 1) // 2] = cutoff ** 2 / (4 * np.pi)
    kernel = kernel / np.sum(kernel)
    if pad_to > k:
        p = (pad_to - k) // 2
        kernel = np.pad(kernel, ((p, p), (p, p)))
    return kernel


def reference_kernels():
    """RealESRGANDataset.__getitem__'s kernel part (kernel1, kernel2, sinc_kernel)."""
    out = []
    for sigma in ((0.2, 3), (0.2, 1.5)):
        k = random.choice(range(7, 22, 2))
        if np.random.uniform() < 0.1:
            omega = np.random.uniform(np.pi / 3 if k < 13 else np.pi / 5, np.pi)
            kernel = _circular_lowpass_kernel(omega, k)
        else:
            kernel = _random_kernel(k, sigma)
        p = (21 - k) // 2
        out.append(torch.FloatTensor(np.pad(kernel, ((p, p), (p, p)))))
    if np.random.uniform() < 0.8:
        k = random.choice(range(7, 22, 2))
        out.append(torch.FloatTensor(_circular_lowpass_kernel(np.random.uniform(np.pi / 3, np.pi),
                                                              k, pad_to=21)))
    else:
        pulse = torch.zeros(21, 21)
        pulse[10, 10] = 1
        out.append(pulse)
    return out


def ref_filter2d(img, kernel):
    k = kernel.size(-1)
    b, c, h, w = img.size()
    img = F.pad(img, (k // 2, k // 2, k // 2, k // 2), mode='reflect')
    ph, pw = img.size()[-2:]
    if kernel.size(0) == 1:
        return F.conv2d(img.view(b * c, 1, ph, pw), kernel.view(1, 1, k, k)).view(b, c, h, w)
    img = img.view(1, b * c, ph, pw)
    kernel = kernel.view(b, 1, k, k).repeat(1, c, 1, 1).view(b * c, 1, k, k)
    return F.conv2d(img, kernel, groups=b * c).view(b, c, h, w)


def _rgb_to_gray(img):
    return (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3])


def ref_gaussian_noise(img, sigma_range, gray_prob):
    b = img.size(0)
    sigma = (torch.rand(b, dtype=img.dtype) * (sigma_range[1] - sigma_range[0]) +
             sigma_range[0]).view(b, 1, 1, 1)
    gray = (torch.rand(b, dtype=img.dtype) < gray_prob).float().view(b, 1, 1, 1)
    noise_gray = None
    if torch.sum(gray) > 0:
        noise_gray = (torch.randn(*img.size()[2:4], dtype=img.dtype) * sigma / 255.).view(
            b, 1, *img.shape[2:])
    noise = torch.randn(*img.size(), dtype=img.dtype) * sigma / 255.
    if noise_gray is not None:
        noise = noise * (1 - gray) + noise_gray * gray
    return torch.clamp(img + noise, 0, 1)


def ref_poisson_noise(img, scale_range, gray_prob):
    b = img.size(0)
    scale = (torch.rand(b, dtype=img.dtype) * (scale_range[1] - scale_range[0]) +
             scale_range[0]).view(b, 1, 1, 1)
    gray = (torch.rand(b, dtype=img.dtype) < gray_prob).float().view(b, 1, 1, 1)
    noise_gray = None
    if torch.sum(gray) > 0:
        img_gray = torch.clamp((_rgb_to_gray(img) * 255.0).round(), 0, 255) / 255.
        vals = [2 ** np.ceil(np.log2(len(torch.unique(img_gray[i])))) for i in range(b)]
        vals = img_gray.new_tensor(vals).view(b, 1, 1, 1)
        noise_gray = (torch.poisson(img_gray * vals) / vals - img_gray).expand(b, 3, *img.shape[2:])
    q = torch.clamp((img * 255.0).round(), 0, 255) / 255.
    vals = [2 ** np.ceil(np.log2(len(torch.unique(q[i])))) for i in range(b)]
    vals = q.new_tensor(vals).view(b, 1, 1, 1)
    noise = torch.poisson(q * vals) / vals - q
    if noise_gray is not None:
        noise = noise * (1 - gray) + noise_gray * gray
    return torch.clamp(img + noise * scale, 0, 1)


_Y_TABLE = torch.tensor([[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
                         [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
                         [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
                         [49, 64, 78, 87, 103, 121, 120, 101],
                         [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32).T
_C_TABLE = torch.full((8, 8), 99.)
_C_TABLE[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99],
                                 [47, 66, 99, 99]], dtype=torch.float32).T


def _dct_tensor():
    t = np.zeros((8, 8, 8, 8), dtype=np.float32)
    for x, y, u, v in np.ndindex(8, 8, 8, 8):
        t[x, y, u, v] = np.cos((2 * x + 1) * u * np.pi / 16) * np.cos((2 * y + 1) * v * np.pi / 16)
    alpha = np.array([1. / np.sqrt(2)] + [1] * 7)
    return torch.from_numpy(t), torch.from_numpy(np.outer(alpha, alpha).astype(np.float32))


_DCT, _ALPHA = _dct_tensor()
_IDCT = _DCT.permute(2, 3, 0, 1).contiguous()  # idct[x, y, u, v] = dct[u, v, x, y]


def ref_diffjpeg(x, quality):
    """basicsr's DiffJPEG(differentiable=False): (B, 3, H, W) RGB in [0, 1], quality (B,)."""
    b = x.size(0)
    q = quality.view(b, 1, 1, 1)
    factor = torch.where(q < 50, 5000. / q, 200. - q * 2) / 100.
    h, w = x.shape[-2:]
    hp, wp = (16 - h % 16) % 16, (16 - w % 16) % 16
    x = F.pad(x, (0, wp, 0, hp), mode='constant', value=0)
    img = (x * 255).permute(0, 2, 3, 1)
    m = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                      [0.5, -0.418688, -0.081312]], dtype=torch.float32).T
    ycc = torch.tensordot(img, m, dims=1) + torch.tensor([0., 128., 128.])
    ycc = ycc.permute(0, 3, 1, 2)
    chans = [ycc[:, 0]] + [F.avg_pool2d(ycc[:, i:i + 1], 2, 2, count_include_pad=False)[:, 0]
                           for i in (1, 2)]
    rec = []
    for i, ch in enumerate(chans):
        hh, ww = ch.shape[-2:]
        blocks = ch.view(b, hh // 8, 8, -1, 8).transpose(2, 3).contiguous().view(b, -1, 8, 8)
        coef = _ALPHA * 0.25 * torch.tensordot(blocks - 128, _DCT, dims=2)
        table = (_Y_TABLE if i == 0 else _C_TABLE).expand(b, 1, 8, 8) * factor
        coef = torch.round(coef / table) * table
        blocks = 0.25 * torch.tensordot(coef * _ALPHA, _IDCT, dims=2) + 128
        ch = blocks.view(b, hh // 8, ww // 8, 8, 8).permute(0, 1, 3, 2, 4).contiguous().view(
            b, hh, ww)
        if i:
            ch = ch.unsqueeze(-1).repeat(1, 1, 2, 2).view(b, hh * 2, ww * 2)
        rec.append(ch)
    ycc = torch.stack(rec, -1) + torch.tensor([0., -128., -128.])
    mi = torch.tensor([[1., 0., 1.402], [1, -0.344136, -0.714136], [1, 1.772, 0]],
                      dtype=torch.float32).T
    out = torch.tensordot(ycc, mi, dims=1).permute(0, 3, 1, 2)
    out = torch.min(255 * torch.ones_like(out), torch.max(torch.zeros_like(out), out)) / 255
    return out[:, :, :h, :w]


def _noise(out, suffix):
    if np.random.uniform() < OPT['gaussian_noise_prob' + suffix]:
        return ref_gaussian_noise(out, OPT['noise_range' + suffix], OPT['gray_noise_prob' + suffix])
    return ref_poisson_noise(out, OPT['poisson_scale_range' + suffix],
                             OPT['gray_noise_prob' + suffix])


def _scale(probs, rng):
    way = random.choices(['up', 'down', 'keep'], probs)[0]
    return {'up': lambda: np.random.uniform(1, rng[1]),
            'down': lambda: np.random.uniform(rng[0], 1), 'keep': lambda: 1}[way]()


def reference_degrade(gt):
    """RealESRGANModel.feed_data for one (1, 3, H, W) RGB image in [0, 1] (USM left out)."""
    k1, k2, sinc = reference_kernels()
    h, w = gt.shape[2:4]
    out = ref_filter2d(gt, k1[None])
    out = F.interpolate(out, scale_factor=_scale(OPT['resize_prob'], OPT['resize_range']),
                        mode=random.choice(['area', 'bilinear', 'bicubic']))
    out = _noise(out, '')
    jpeg_p = out.new_zeros(out.size(0)).uniform_(*OPT['jpeg_range'])
    out = ref_diffjpeg(torch.clamp(out, 0, 1), jpeg_p)
    if np.random.uniform() < OPT['second_blur_prob']:
        out = ref_filter2d(out, k2[None])
    s = _scale(OPT['resize_prob2'], OPT['resize_range2'])
    out = F.interpolate(out, size=(int(h / OPT['scale'] * s), int(w / OPT['scale'] * s)),
                        mode=random.choice(['area', 'bilinear', 'bicubic']))
    out = _noise(out, '2')
    size = (h // OPT['scale'], w // OPT['scale'])
    if np.random.uniform() < 0.5:
        out = F.interpolate(out, size=size, mode=random.choice(['area', 'bilinear', 'bicubic']))
        out = ref_filter2d(out, sinc[None])
        jpeg_p = out.new_zeros(out.size(0)).uniform_(*OPT['jpeg_range2'])
        out = ref_diffjpeg(torch.clamp(out, 0, 1), jpeg_p)
    else:
        jpeg_p = out.new_zeros(out.size(0)).uniform_(*OPT['jpeg_range2'])
        out = ref_diffjpeg(torch.clamp(out, 0, 1), jpeg_p)
        out = F.interpolate(out, size=size, mode=random.choice(['area', 'bilinear', 'bicubic']))
        out = ref_filter2d(out, sinc[None])
    return torch.clamp((out * 255.0).round(), 0, 255) / 255.


# ---------------------------------------------------------------------------------- benchmark
def _scene(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w * 200 + 20, yy / h * 180 + 30, (xx + yy) / (h + w) * 150 + 50], -1)
    img = img + rng.normal(0, 4, img.shape)
    for _ in range(40):
        y0, x0 = rng.integers(0, h - 40), rng.integers(0, w - 40)
        img[y0:y0 + rng.integers(8, 120), x0:x0 + rng.integers(8, 200)] = rng.integers(0, 256, 3)
    return img.round().clip(0, 255).astype(np.uint8)


def _time(fn, num, warmup=1):
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(num):
        fn()
    return num / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num', type=int, default=10, help='images per timed run')
    parser.add_argument('--height', type=int, default=512)
    parser.add_argument('--width', type=int, default=1024)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (both sides)')
    parser.add_argument('--repeats', type=int, default=3, help='alternating runs; best is kept')
    parser.add_argument('--cuda-batch', type=int, default=32)
    parser.add_argument('--cuda-size', type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import mmseg_rass  # noqa: F401
    from mmseg_rass.transforms import Degrade

    img = _scene(args.height, args.width)
    rgb = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255.
    ours = Degrade(preset='rass_x1')
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    ref_ips, our_ips = [], []
    for _ in range(args.repeats):  # alternate so load changes hit both sides alike
        ref_ips.append(_time(lambda: reference_degrade(rgb), args.num))
        our_ips.append(_time(lambda: ours(dict(img=img, img_path='x.png')), args.num))
    print(f'CPU, {args.height}x{args.width}, {args.threads} thread(s), {args.num} images x '
          f'{args.repeats} alternating runs (best):')
    print(f'  reference per-image (basicsr re-stated, DiffJPEG): {max(ref_ips):7.2f} images/s '
          f'(runs: {", ".join(f"{v:.2f}" for v in ref_ips)})')
    print(f'  mmseg_rass Degrade (per-image, OpenCV JPEG):     {max(our_ips):7.2f} images/s '
          f'(runs: {", ".join(f"{v:.2f}" for v in our_ips)})')
    print(f'  speed-up: {max(our_ips) / max(ref_ips):.2f}x')
    if torch.cuda.is_available():
        from mmseg_rass.models.data_preprocessors import DegradeSegDataPreProcessor
        pre = DegradeSegDataPreProcessor(size=(args.cuda_size, args.cuda_size))
        sq = torch.from_numpy(_scene(args.cuda_size, args.cuda_size)).permute(2, 0, 1)
        batch = [sq.cuda()] * args.cuda_batch

        def run():
            pre.degrade(batch)
            torch.cuda.synchronize()
        ips = _time(run, 5) * args.cuda_batch
        print(f'CUDA {torch.cuda.get_device_name()}, {args.cuda_size}x{args.cuda_size}, batch '
              f'{args.cuda_batch}: {ips:.1f} images/s (DegradeSegDataPreProcessor.degrade)')
    else:
        print('CUDA: not available, batched GPU path not measured')


if __name__ == '__main__':
    main()
