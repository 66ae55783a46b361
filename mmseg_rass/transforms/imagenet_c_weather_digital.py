"""ImageNet-C weather and digital corruptions (and the holdout ``spatter``, ``saturate``) in torch.

The ten functions follow :mod:`.imagenet_c`'s contract ``fn(x, severity, generators)``: ``x`` is a
float (B, 3, H, W) RGB batch in [0, 255] on any device, ``generators`` one CPU
``torch.Generator`` per image (every random draw of an image comes from its own generator on
the CPU and is then moved to ``x``'s device, so an image's result does not depend on its batch
or device); the result is a float (B, 3, H, W) batch, unclipped where the reference clips
later. Severity parameters are those of ``imagecorruptions`` 1.1.2 (ImageNet-C). Departures
from that reference:

* all: random numbers come from torch, not ``np.random`` (same distributions, other streams);
  arithmetic is float32 in [0, 255] units where the reference uses float64 in [0, 1], so
  values that fall on an integer may truncate one level apart.
* ``brightness`` / ``saturate``: the HSV round trip (scikit-image's ``rgb2hsv``/``hsv2rgb``) is
  computed in closed form: with H and S fixed RGB scales with V, and with H and V fixed
  ``V - RGB`` scales with S; grey pixels (hue 0 in scikit-image) turn red by the saturation
  offset as in the reference.
* ``pixelate``: on uint8 CPU batches Pillow itself (``uint8_cpu``, the reference's operations).
  Otherwise Pillow's ``BOX`` reduction (fixed-point, horizontal pass first, 8-bit
  intermediate) and ``NEAREST`` enlargement (accumulated double steps) reproduced in integer
  arithmetic and index tables: bit-exact where Pillow runs the horizontal pass first (e.g.
  512×1024 at every severity); Pillow 13 runs the vertical one first for some sizes (its rule
  is not reproduced), and then pixels differ by at most one level.
* ``jpeg_compression``: Pillow's JPEG encoder (the reference's codec and quality), one image at a
  time on the CPU, decoded by OpenCV's libjpeg-turbo (the bytes of Pillow's decoder, tested);
  uint8 CPU batches skip the float round trip (``uint8_cpu``): bit-exact.
* ``snow``: only the centre crop of the normal field that the zoom uses is drawn; the
  motion-blurred flakes use the reference's shifted-copy kernel with edge replication.
* ``frost``: textures from the installed ``imagecorruptions`` package, decoded and resized with
  OpenCV as in the reference (texture index 0–4, as the reference never picks the sixth);
  uint8 CPU batches in numpy float32 (``uint8_cpu``, the same bytes).
* ``fog``: the diamond-square plasma fractal in float32, batched level by level on the device;
  uint8 CPU batches build it in numpy (``uint8_cpu``, the same draws and bytes, faster).
* ``elastic_transform``: the smoothed displacement fields are separable Gaussian convolutions
  and the bilinear resampling is ``grid_sample`` (reflection, matching ``map_coordinates``'s
  ``reflect`` mode).
* ``spatter``: the water drops' texture (Canny edges, distance transform, histogram
  equalisation, emboss filter) runs through OpenCV per image on the CPU as in the reference;
  a random layer with no drop (possible only on tiny images, where the reference divides by
  zero) adds nothing; uint8 CPU batches blend in numpy float32 (``uint8_cpu``, the same bytes).
"""
import functools
import importlib.util
import io
import math
import os.path as osp

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

FROST_FILES = ('frost1.png', 'frost2.png', 'frost3.png', 'frost4.jpg', 'frost5.jpg', 'frost6.jpg')


# ---------------------------------------------------------------- helpers


def _draw(generators, draw, device):
    """Stack one CPU draw per image, ``draw(generator)``, and move it to ``device``."""
    return torch.stack([draw(g) for g in generators]).to(device)


def _uniform(generators, shape, low, high, device):
    return _draw(generators, lambda g: torch.rand(shape, generator=g), device) * (high - low) + low


def _normal(generators, shape, mean, std, device):
    return _draw(generators, lambda g: torch.randn(shape, generator=g), device) * std + mean


def _scalars(generators, low, high):
    """One uniform float in [low, high) per image (CPU)."""
    return [low + (high - low) * torch.rand((), generator=g, dtype=torch.float64).item()
            for g in generators]


def _pad_index(n, r, mode, device):
    """Indices of a length-``n`` axis padded by ``r``: scipy's ``reflect`` or ``nearest``."""
    i = torch.arange(-r, n + r, device=device)
    if mode == 'nearest':
        return i.clamp(0, n - 1)
    i = i % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _fft_size(n):
    """The smallest 2^a·3^b·5^c ≥ ``n`` (a fast FFT length)."""
    best = 1 << (n - 1).bit_length()
    p3 = 1
    while p3 < best:
        p35 = p3
        while p35 < best:
            size = p35 << max(0, (n - 1) // p35).bit_length()
            best = min(best, size)
            p35 *= 5
        p3 *= 3
    return best


def _gaussian(t, sigmas, truncate, mode):
    """scipy ``gaussian_filter`` (``mode`` 'reflect' or 'nearest') of (N, H, W) ``t``.

    ``sigmas`` is (sigma_rows, sigma_cols); each kernel has radius ``int(truncate * sigma + 0.5)``.
    Each axis is padded by the radius and convolved through a real FFT (exact up to rounding).
    """
    for dim, sigma in ((1, sigmas[0]), (2, sigmas[1])):
        r = int(truncate * sigma + 0.5)
        if r == 0:
            continue
        k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
        n = t.shape[dim]
        padded = t.index_select(dim, _pad_index(n, r, mode, t.device)).transpose(dim, -1)
        size = _fft_size(n + 2 * r)
        kf = torch.fft.rfft((k / k.sum()).to(t), size)
        out = torch.fft.irfft(torch.fft.rfft(padded, size) * kf, size)[..., 2 * r:2 * r + n]
        t = out.transpose(dim, -1)
    return t.contiguous()


def _motion_blur_layer(layer, radius, sigma, angle):
    """The reference's motion blur of one (H, W) layer: a one-sided Gaussian line of shifted
    copies (edge replicated) at ``angle`` degrees."""
    width = 2 * radius + 1
    k = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    point = (width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle)))
    hypot = math.hypot(*point)
    h, w = layer.shape
    padded = F.pad(layer[None, None], (width, width, width, width), mode='replicate')[0, 0]
    out = torch.zeros_like(layer)
    for i in range(width):
        dy = -math.ceil(i * point[0] / hypot - 0.5)
        dx = -math.ceil(i * point[1] / hypot - 0.5)
        if abs(dy) >= h or abs(dx) >= w:
            break
        out += float(k[i]) * padded[width - dy:width - dy + h, width - dx:width - dx + w]
    return out


def _gray(x):
    """OpenCV's RGB→grey weights of an RGB (B, 3, H, W) batch, kept as (B, 1, H, W)."""
    return 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]


# ---------------------------------------------------------------- weather


def snow(x, severity, generators):
    """Snow: a zoomed, thresholded normal field, motion-blurred, added twice (once rotated by
    180°) over a greyed, brightened image."""
    mean, std, zoom, thresh, radius, sigma, keep = [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)][severity - 1]
    _, _, h, w = x.shape
    ch, cw = math.ceil(h / zoom), math.ceil(w / zoom)
    layer = _normal(generators, (1, ch, cw), mean, std, x.device)
    layer = F.interpolate(layer, size=(round(ch * zoom), round(cw * zoom)), mode='bilinear',
                          align_corners=True)[:, 0]
    layer = torch.where(layer < thresh, 0., layer).clamp(0, 1)
    angles = _scalars(generators, -135., -45.)
    layer = torch.stack([_motion_blur_layer(lay, radius, sigma, a)
                         for lay, a in zip(layer, angles)])
    layer = (layer * 255).round()[:, None, :h, :w]
    x = keep * x + (1 - keep) * torch.maximum(x, _gray(x) * 1.5 + 127.5)
    return x + layer + layer.flip(-1, -2)


@functools.lru_cache(maxsize=None)
def _frost_texture(path):
    img = cv2.imread(path)
    if img is None:
        raise FileNotFoundError(f'cannot read the frost texture {path}: reinstall it with '
                                '`pip install --force-reinstall imagecorruptions==1.1.2`')
    return img


def _frost_dir():
    spec = importlib.util.find_spec('imagecorruptions')
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            'the frost corruption needs the ImageNet-C frost textures of the imagecorruptions '
            'package, which is not installed: `pip install imagecorruptions==1.1.2`')
    return osp.join(list(spec.submodule_search_locations)[0], 'frost')


@functools.lru_cache(maxsize=6)
def _frost_resized(path, h, w):
    """The texture (RGB uint8 tensor) resized as the reference does to cover an h×w image."""
    tex = _frost_texture(path)
    th, tw = tex.shape[:2]
    scale = 1.1 * max(1., h / th, w / tw)
    tex = cv2.resize(tex, (math.ceil(tw * scale), math.ceil(th * scale)),
                     interpolation=cv2.INTER_CUBIC)
    return torch.from_numpy(np.ascontiguousarray(tex[..., ::-1])).permute(2, 0, 1)


_FROST = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))  # image, texture weights


def _frost_crops(generators, h, w):
    """One random h×w crop (uint8 (3, h, w) view) of one of five frost textures per image."""
    folder = _frost_dir()
    crops = []
    for g in generators:
        idx = int(torch.randint(5, (), generator=g))
        tex = _frost_resized(osp.join(folder, FROST_FILES[idx]), h, w)
        top = int(torch.randint(tex.shape[1] - h, (), generator=g))
        left = int(torch.randint(tex.shape[2] - w, (), generator=g))
        crops.append(tex[:, top:top + h, left:left + w])
    return crops


def frost(x, severity, generators):
    """Frost: ``a·x + b·texture`` with a random crop of one of five frost textures."""
    a, b = _FROST[severity - 1]
    return a * x + b * torch.stack(_frost_crops(generators, *x.shape[2:])).to(x)


def _frost_uint8(x, severity, generators):
    """:func:`frost` of a uint8 CPU batch (the same bytes, float32 numpy arithmetic)."""
    a, b = (np.float32(v) for v in _FROST[severity - 1])
    out = []
    for img, crop in zip(x.numpy(), _frost_crops(generators, *x.shape[2:])):
        res = np.multiply(img, a, dtype=np.float32)
        res += np.multiply(crop.numpy(), b, dtype=np.float32)
        out.append(np.clip(res, 0, 255, out=res).astype(np.uint8))
    return torch.from_numpy(np.stack(out))


frost.uint8_cpu = _frost_uint8


def _plasma_fractal(generators, size, decay, device):
    """Diamond-square height maps (B, size, size) in [0, 1] on a torus, as the reference."""
    m = torch.zeros(len(generators), size, size, device=device)
    step, wibble = size, 100.
    while step >= 2:
        n, half = size // step, step // 2
        noise = _uniform(generators, (3, n, n), -wibble * wibble, wibble * wibble, device)
        corner = m[:, ::step, ::step]
        square = corner + corner.roll(-1, 1)
        square = square + square.roll(-1, 2)
        m[:, half::step, half::step] = square / 4 + noise[:, 0]
        centre = m[:, half::step, half::step]
        m[:, ::step, half::step] = (centre + centre.roll(1, 1) + corner + corner.roll(-1, 2)) / 4 \
            + noise[:, 1]
        m[:, half::step, ::step] = (centre + centre.roll(1, 2) + corner + corner.roll(-1, 1)) / 4 \
            + noise[:, 2]
        step //= 2
        wibble /= decay
    m = m - m.amin((1, 2), keepdim=True)
    return m / m.amax((1, 2), keepdim=True)


def fog(x, severity, generators):
    """Fog: a plasma fractal added and the result rescaled by ``max / (max + strength)``."""
    strength, decay = [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)][severity - 1]
    _, _, h, w = x.shape
    size = 1 << (max(h, w) - 1).bit_length()
    plasma = _plasma_fractal(generators, size, decay, x.device)[:, None, :h, :w]
    top = x.amax((1, 2, 3), keepdim=True) / 255.
    return (x + 255. * strength * plasma) * top / (top + strength)


def _add_rolled(a, b, shift, axis, out=None):
    """``a + np.roll(b, shift, axis)`` (``shift`` ±1) without the rolled copy."""
    out = np.empty_like(a) if out is None else out
    head, tail = (slice(None, -1), slice(1, None))[::-shift]
    ix = lambda s: (s, slice(None)) if axis == 0 else (slice(None), s)  # noqa: E731
    np.add(a[ix(head)], b[ix(tail)], out=out[ix(head)])
    edge = (slice(-1, None), slice(None, 1))[::-shift]
    np.add(a[ix(edge[0])], b[ix(edge[1])], out=out[ix(edge[0])])
    return out


def _plasma_numpy(g, size, decay, h, w):
    """The top-left h×w of one :func:`_plasma_fractal` map as float32 numpy (the same draws and
    float32 operations, so the same values): each level's grid is built densely from the
    previous one; the last level is interleaved only over the crop (its extrema come from its
    four parts)."""
    cur = np.zeros((1, 1), np.float32)
    parts, wibble, n = (cur,), 100., 1
    while n < size:
        noise = torch.rand((3, n, n), generator=g).numpy()
        noise *= np.float32(2 * wibble * wibble)
        noise -= np.float32(wibble * wibble)
        square = _add_rolled(cur, cur, -1, 0)
        centre = _add_rolled(square, square, -1, 1)
        centre /= 4
        centre += noise[0]
        edges = []
        for axis, k in ((0, 1), (1, 2)):  # centre rolled by +1, corner by -1 along the other axis
            e = _add_rolled(centre, centre, 1, axis)
            e += cur
            _add_rolled(e, cur, -1, 1 - axis, out=e)
            e /= 4
            e += noise[k]
            edges.append(e)
        parts = (cur, centre, *edges)
        rows, cols = (h, w) if 2 * n == size else (2 * n, 2 * n)
        cur = np.empty((rows, cols), np.float32)
        r0, c0, r1, c1 = (rows + 1) // 2, (cols + 1) // 2, rows // 2, cols // 2
        cur[::2, ::2] = parts[0][:r0, :c0]
        cur[1::2, 1::2] = centre[:r1, :c1]
        cur[::2, 1::2] = edges[0][:r0, :c1]
        cur[1::2, ::2] = edges[1][:r1, :c0]
        n, wibble = 2 * n, wibble / decay
    low = min(p.min() for p in parts)
    cur -= low
    cur /= max(p.max() for p in parts) - low
    return cur


def _fog_uint8(x, severity, generators):
    """:func:`fog` of a uint8 CPU batch (the same bytes; the fractal and the arithmetic in
    float32 numpy, faster than torch's strided writes on one thread)."""
    strength, decay = [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)][severity - 1]
    _, _, h, w = x.shape
    size = 1 << (max(h, w) - 1).bit_length()
    k, s = np.float32(255. * strength), np.float32(strength)
    out = []
    for img, g in zip(x.numpy(), generators):
        layer = _plasma_numpy(g, size, decay, h, w)
        res = np.add(img, np.multiply(layer, k, out=layer), dtype=np.float32)
        top = np.float32(img.max()) / np.float32(255.)
        res *= top
        res /= top + s
        out.append(np.clip(res, 0, 255, out=res).astype(np.uint8))
    return torch.from_numpy(np.stack(out))


fog.uint8_cpu = _fog_uint8


def brightness(x, severity, generators):
    """Brightness: HSV value raised by ``c`` (clipped at 1), hue and saturation kept."""
    c = 255. * [.1, .2, .3, .4, .5][severity - 1]
    v = x.amax(1, keepdim=True)
    v_new = (v + c).clamp(max=255.)
    return torch.where(v > 0, x * v_new / v.clamp(min=1e-12), v_new)


# ---------------------------------------------------------------- digital


def contrast(x, severity, generators):
    """Contrast: each channel pulled toward its image mean by the factor ``c``."""
    c = [0.4, .3, .2, .1, .05][severity - 1]
    mean = x.mean((2, 3), keepdim=True)
    return (x - mean) * c + mean


def elastic_transform(x, severity, generators):
    """Elastic transform: bilinear resampling along smoothed uniform random displacements."""
    alpha = 250 * [0.05, 0.065, 0.085, 0.1, 0.12][severity - 1]
    b, _, h, w = x.shape
    max_d = h * 0.005
    field = _uniform(generators, (2, h, w), -max_d, max_d, x.device).flatten(0, 1)
    field = _gaussian(field, (0.01 * h, 0.01 * w), 3., 'reflect').view(b, 2, h, w) * alpha
    rows = torch.arange(h, device=x.device, dtype=x.dtype)[:, None] + field[:, 1]
    cols = torch.arange(w, device=x.device, dtype=x.dtype) + field[:, 0]
    grid = torch.stack(((2 * cols + 1) / w - 1, (2 * rows + 1) / h - 1), -1)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='reflection', align_corners=False)


@functools.lru_cache(maxsize=64)
def _pil_box_windows(n_in, n_out, device):
    """Pillow's ``BOX`` windows [lo, hi) per output pixel and their fixed-point weight."""
    scale = n_in / n_out
    support, inv = 0.5 * max(scale, 1.), 1. / max(scale, 1.)
    lo, hi, weight = [], [], []
    for i in range(n_out):
        centre = (i + 0.5) * scale
        start = max(int(centre - support + 0.5), 0)
        stop = min(int(centre + support + 0.5), n_in)
        inside = [j for j in range(start, stop) if -0.5 < (j - centre + 0.5) * inv <= 0.5]
        lo.append(inside[0])
        hi.append(inside[-1] + 1)
        weight.append(int(0.5 + (1. / len(inside)) * (1 << 22)))
    return (torch.tensor(lo, device=device), torch.tensor(hi, device=device),
            torch.tensor(weight, dtype=torch.int32, device=device))


@functools.lru_cache(maxsize=64)
def _pil_nearest_index(n_in, n_out, device):
    """Pillow's ``NEAREST`` source index per output pixel (its accumulated double steps)."""
    step, pos, index = n_in / n_out, 0.5 * n_in / n_out, []
    for _ in range(n_out):
        index.append(min(math.floor(pos), n_in - 1))
        pos += step
    return torch.tensor(index, device=device)


def _pil_box_reduce(img, n_out, dim):
    """One 8-bit Pillow ``BOX`` pass of int32 ``img`` along ``dim``: rounded fixed-point means
    (a window sum times its weight stays below 2^31)."""
    lo, hi, weight = _pil_box_windows(img.shape[dim], n_out, img.device)
    csum = F.pad(img.cumsum(dim, dtype=torch.int32), (1, 0) if dim == 3 else (0, 0, 1, 0))
    sums = csum.index_select(dim, hi) - csum.index_select(dim, lo)
    sums = sums * weight.view([-1, 1] if dim == 2 else [-1]) + (1 << 21)
    return (sums >> 22).clamp_(0, 255)


def _pil_each(x, op):
    """``op`` (``PIL.Image`` → ``PIL.Image``) of each image of a uint8 (B, 3, H, W) CPU batch."""
    out = np.stack([np.asarray(op(Image.fromarray(img.permute(1, 2, 0).numpy()))) for img in x])
    return torch.from_numpy(out).permute(0, 3, 1, 2)


_PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)


def _pixelate_pil(x, severity, generators):
    """:func:`pixelate` of a uint8 CPU batch by Pillow itself (the reference's operations)."""
    c = _PIXELATE[severity - 1]
    h, w = x.shape[-2:]
    return _pil_each(x, lambda im: im.resize((int(w * c), int(h * c)), Image.BOX).resize(
        (w, h), Image.NEAREST))


def pixelate(x, severity, generators):
    """Pixelate: Pillow ``BOX`` reduction by ``c`` then ``NEAREST`` enlargement (bit-exact)."""
    c = _PIXELATE[severity - 1]
    _, _, h, w = x.shape
    sh, sw = int(h * c), int(w * c)
    small = x.clamp(0, 255).round().to(torch.int32)
    small = _pil_box_reduce(_pil_box_reduce(small, sw, 3), sh, 2).to(x.dtype)
    return small.index_select(2, _pil_nearest_index(sh, h, x.device))[
        ..., _pil_nearest_index(sw, w, x.device)]


pixelate.uint8_cpu = _pixelate_pil


_JPEG_QUALITY = (25, 18, 15, 10, 7)


def jpeg_compression(x, severity, generators):
    """JPEG compression: Pillow's encoder at quality ``q`` and its decoder, per image on the CPU
    (the input is rounded to 8 bits first)."""
    x8 = x.clamp(0, 255).round().to(torch.uint8).cpu()
    return _jpeg_uint8(x8, severity, generators).to(x)


def _jpeg_uint8(x, severity, generators):
    """:func:`jpeg_compression` of a uint8 CPU batch (no float round trip): encoded by Pillow,
    decoded by OpenCV straight into an array (libjpeg-turbo's decoder as in Pillow, the same
    bytes; faster than Pillow's decode and copy)."""
    out = []
    for img in x:
        buf = io.BytesIO()
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, 'JPEG',
                                                          quality=_JPEG_QUALITY[severity - 1])
        out.append(cv2.imdecode(np.frombuffer(buf.getbuffer(), np.uint8), cv2.IMREAD_COLOR_RGB))
    return torch.from_numpy(out[0][None] if len(out) == 1 else np.stack(out)).permute(0, 3, 1, 2)


jpeg_compression.uint8_cpu = _jpeg_uint8


# ---------------------------------------------------------------- holdout


def _drop_texture(liquid):
    """The reference's water-drop texture of one (H, W) uint8 layer, via OpenCV (CPU)."""
    dist = cv2.distanceTransform(255 - cv2.Canny(liquid, 50, 150), cv2.DIST_L2, 5)
    dist = cv2.blur(np.minimum(dist, 20), (3, 3)).astype(np.uint8)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)
    dist = cv2.filter2D(cv2.equalizeHist(dist), cv2.CV_8U, emboss)
    return cv2.blur(dist, (3, 3)).astype(np.float32)


# mean, std, sigma, threshold, ``extra`` (the drops' gain (water) or the mask's blur sigma
# (mud)), mud
_SPATTER = ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1))
_WATER, _MUD = (175., 238., 238.), (63., 42., 20.)


def _spatter_layers(severity, generators, h, w, device):
    """The thresholded liquid layer (B, h, w) and, for mud, its mask (B, h, w) (else None)."""
    mean, std, sigma, thresh, extra, mud = _SPATTER[severity - 1]
    liquid = _gaussian(_normal(generators, (h, w), mean, std, device), (sigma, sigma), 4.,
                       'nearest')
    liquid = torch.where(liquid < thresh, 0., liquid)
    if not mud:
        return liquid, None
    m = _gaussian((liquid > thresh).float(), (extra, extra), 4., 'nearest')
    return liquid, torch.where(m < 0.8, 0., m)


def _drops(liquid):
    """The water drops' mask (h, w) float32 numpy in [0, 1] of one (h, w) liquid layer."""
    liquid = np.clip(liquid * np.float32(255), 0, 255).astype(np.uint8)
    m = liquid.astype(np.float32) * _drop_texture(liquid)
    peak = m.max()
    return m / peak if peak > 0 else np.zeros_like(m)


def spatter(x, severity, generators):
    """Spatter: water drops (pale turquoise, severities 1–3) or mud (brown, 4–5) from a
    smoothed, thresholded normal field."""
    _, _, h, w = x.shape
    liquid, m = _spatter_layers(severity, generators, h, w, x.device)
    if m is not None:
        m = m.to(x)[:, None]
        colour = torch.tensor(_MUD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return x * (1 - m) + colour * m
    m = torch.stack([torch.from_numpy(_drops(layer)) for layer in liquid.cpu().numpy()])
    m = m.to(x)[:, None] * _SPATTER[severity - 1][4]
    colour = torch.tensor(_WATER, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return x + m * colour


def _spatter_uint8(x, severity, generators):
    """:func:`spatter` of a uint8 CPU batch (the same bytes; the blending in numpy float32)."""
    _, _, h, w = x.shape
    liquid, mask = _spatter_layers(severity, generators, h, w, 'cpu')
    extra = np.float32(_SPATTER[severity - 1][4])
    out = []
    for i, img in enumerate(x.numpy()):
        if mask is None:
            m = _drops(liquid[i].numpy()) * extra
            res = np.add(img, m * np.array(_WATER, np.float32)[:, None, None], dtype=np.float32)
        else:
            m = mask[i].numpy()
            res = np.multiply(img, 1 - m, dtype=np.float32)
            res += np.array(_MUD, np.float32)[:, None, None] * m
        out.append(np.clip(res, 0, 255, out=res).astype(np.uint8))
    return torch.from_numpy(np.stack(out))


spatter.uint8_cpu = _spatter_uint8


def saturate(x, severity, generators):
    """Saturate: HSV saturation mapped to ``clip(a·S + b, 0, 1)``, hue and value kept."""
    a, b = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][severity - 1]
    v = x.amax(1, keepdim=True)
    delta = v - x.amin(1, keepdim=True)
    s = delta / v.clamp(min=1e-12)
    s_new = (s * a + b).clamp(0, 1)
    chroma = torch.where(delta > 0, (v - x) * s_new * v / delta.clamp(min=1e-12),
                         torch.cat([torch.zeros_like(v), s_new * v, s_new * v], 1))
    return v - chroma
