"""ImageNet-C noise and blur corruptions in torch: batched, any device, deterministic per image.

The nine functions follow ``imagecorruptions`` 1.1.2 (Hendrycks & Dietterich's ImageNet-C code):
the same severity tables and the same operations, in float32 on [0, 255] images (the reference
works in float64 on [0, 1]). Each takes ``(x, severity, generators)`` as described in
:mod:`.imagenet_c` and returns the result clipped to [0, 255] as the reference does. Random
draws come from the image's own CPU ``torch.Generator`` (then move to ``x``'s device), so a
random corruption matches the reference in distribution, not draw for draw.

``gaussian_noise``, ``impulse_noise`` and ``speckle_noise`` carry ``uint8_cpu`` shortcuts (the
same draws and bytes, float32 arithmetic in numpy, faster than torch's on one CPU thread).

Where the computation departs from the reference:

* ``impulse_noise``: one uniform draw per value, ``u < c/2`` → 0 and ``c/2 ≤ u < c`` → 255;
  the same law as scikit-image's ``random_noise(mode='s&p')`` (flip with probability ``c``,
  then salt or pepper with probability 1/2 each), which draws two Bernoulli arrays.
* ``shot_noise``: numpy's Poisson sampler replaced by inversion of tabulated CDFs (one float64
  uniform per value) for integer-valued images, by ``torch.poisson`` otherwise.
* ``gaussian_blur`` and the two blurs of ``glass_blur``: scikit-image's ``gaussian`` (radius
  ``int(4σ + 0.5)``, replicated borders), as separable sums of shifted copies.
* ``glass_blur``: the reference's pixel "swap" on numpy views is in effect a copy, applied
  pixel after pixel (a sequential chain); the same chain is resolved here for all pixels at once
  by pointer jumping (about log2 of the longest chain rounds of gathers), equal to the
  sequential loop given the same offsets. The intermediate ``np.uint8`` truncation is kept
  (``floor``).
* ``defocus_blur``: the reference's anti-aliased disk kernel (including its reflect-101
  Gaussian smoothing, which makes the severity-4 and -5 kernels sum to about 1.01), applied as
  ``cv2.filter2D`` does (correlation, reflect-101 borders) by the project's ``filter2d``
  (real FFTs for kernels over 11 pixels).
* ``motion_blur``: the reference's shifts and Gaussian weights along the random angle
  (including its early stop when a shift reaches the image size), summed as replicate-padded
  shifted copies, which is what its ``shift`` helper computes.
* ``zoom_blur``: each centre crop resized with ``F.interpolate(mode='bilinear',
  align_corners=True)``, the sampling grid of ``scipy.ndimage.zoom(order=1)`` (output size
  ``round(crop · z)``, input coordinate ``o · (n_in - 1) / (n_out - 1)``).
"""
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from .degradation_kernels import filter2d

_GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)
_SHOT_NOISE = (60, 25, 12, 5, 3)
_IMPULSE_NOISE = (0.03, 0.06, 0.09, 0.17, 0.27)
_SPECKLE_NOISE = (0.15, 0.2, 0.35, 0.45, 0.6)
_GAUSSIAN_BLUR = (1, 2, 3, 4, 6)
_GLASS_BLUR = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))  # σ, δ, iterations
_DEFOCUS_BLUR = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))  # radius, alias blur
_MOTION_BLUR = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))  # radius, σ
_ZOOM_BLUR = ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02),
              (1, 1.31, 0.03))  # np.arange arguments of the zoom factors


def _prepare(x, generators):
    """Check one generator per image; return ``x`` contiguous (a permuted HWC image is slow)."""
    if len(generators) != x.shape[0]:
        raise ValueError(f'got {len(generators)} generators for a batch of {x.shape[0]} images: '
                         'pass one torch.Generator per image')
    return x.contiguous()


def _draw(x, generators, sample, dtype=torch.float32):
    """Fill a (B, C, H, W) CPU tensor of ``dtype`` by ``sample(size, generator, out)`` per
    image, then move it to ``x``'s device."""
    out = torch.empty(x.shape, dtype=dtype)
    for g, o in zip(generators, out):
        sample(x.shape[1:], generator=g, out=o)
    return out.to(x.device)


def _separable(x, kernel):
    """Correlate rows and columns of (B, C, H, W) with an odd 1-D kernel, replicated borders."""
    r = len(kernel) // 2
    h, w = x.shape[-2:]
    padded = F.pad(x, (r, r, r, r), mode='replicate')
    rows = padded[..., :, :w] * float(kernel[0])
    for i in range(1, len(kernel)):
        rows.add_(padded[..., :, i:i + w], alpha=float(kernel[i]))
    out = rows[..., :h, :] * float(kernel[0])
    for i in range(1, len(kernel)):
        out.add_(rows[..., i:i + h, :], alpha=float(kernel[i]))
    return out


def _gaussian_filter(x, sigma):
    """scikit-image's ``gaussian`` per channel: truncated at 4σ, replicated borders."""
    r = int(4 * sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return _separable(x, kernel / kernel.sum())


def gaussian_noise(x, severity, generators):
    """Additive Gaussian noise, σ = c · 255."""
    c = _GAUSSIAN_NOISE[severity - 1]
    x = _prepare(x, generators)
    return _draw(x, generators, torch.randn).mul_(255 * c).add_(x).clamp_(0, 255)


def _noise_uint8(x, generators, sample, combine):
    """A noise corruption of a uint8 CPU batch in numpy (its vectorised float32 and uint8
    arithmetic is several times faster than torch's on one thread): ``combine(noise, image)``
    of each image's float32 draw (``sample``, as the float path) and its uint8 array returns
    the float32 result, clipped and truncated in place; or uint8, returned as is."""
    x = _prepare(x, generators)
    out = []
    for img, g in zip(x.numpy(), generators):
        res = combine(sample(img.shape, generator=g).numpy(), img)
        if res.dtype != np.uint8:
            res = np.clip(res, 0, 255, out=res).astype(np.uint8)
        out.append(res)
    return torch.from_numpy(np.stack(out))


def _gaussian_noise_uint8(x, severity, generators):
    """:func:`gaussian_noise` of a uint8 CPU batch (the same bytes, float32 numpy arithmetic)."""
    k = np.float32(255 * _GAUSSIAN_NOISE[severity - 1])
    return _noise_uint8(x, generators, torch.randn, lambda n, img: np.add(n * k, img, out=n))


gaussian_noise.uint8_cpu = _gaussian_noise_uint8


_GUIDE_BITS = 10  # the inverse-CDF guide tables' 2^10 buckets per level


@functools.lru_cache(maxsize=16)
def _poisson_tables(c, device):
    """Inverse-CDF tables of Poisson(λ = v / 255 · c) for the 256 levels ``v`` (float64).

    Returns ``(cdf, guide)`` flattened from (256, K) and (256, 2^b): ``cdf`` the CDFs with the last
    column set to 1 (it moves a tail mass below 1e-20 onto the last count); ``guide``, for the
    uniforms in bucket ``[i / 2^b, (i + 1) / 2^b)``, twice the number of CDF values ≤ ``i / 2^b``
    (the smallest count there) plus 1 where a CDF value falls inside the bucket (the count then
    depends on where the uniform lies in it).
    """
    lam = torch.arange(256, dtype=torch.float64) / 255 * c
    size = int(c + 12 * math.sqrt(c) + 20)
    pmf = (lam[:, None] / torch.arange(1, size, dtype=torch.float64)).cumprod(1)
    pmf = torch.cat([torch.ones(256, 1, dtype=torch.float64), pmf], 1) * torch.exp(-lam)[:, None]
    cdf = pmf.cumsum(1)
    cdf[:, -1] = 1.
    edges = torch.arange((1 << _GUIDE_BITS) + 1, dtype=torch.float64) / (1 << _GUIDE_BITS)
    below = torch.searchsorted(cdf, edges.expand(256, -1).contiguous(), right=True)
    guide = 2 * below[:, :-1] + (below[:, 1:] > below[:, :-1])
    return cdf.flatten().to(device), guide.flatten().to(device, torch.int32)


def _poisson_levels(levels, c, u):
    """Poisson(levels / 255 · c) counts of int32 ``levels`` by inversion: the number of CDF
    values ≤ the uniform ``u`` (float64 in [0, 1)). The uniform's bucket in the guide table
    gives the count, or where to start stepping through the CDF when a CDF value lies inside
    the bucket (rare)."""
    cdf, guide = _poisson_tables(c, levels.device)
    size = cdf.numel() // 256
    start = guide.index_select(0, (levels << _GUIDE_BITS) + (u * (1 << _GUIDE_BITS)).int())
    todo = torch.nonzero(start & 1).squeeze(1)
    counts = start >> 1
    index = levels[todo].long() * size + counts[todo]
    u = u[todo]
    while todo.numel():
        step = u >= cdf[index]
        counts[todo[step]] += 1
        todo, index, u = todo[step], index[step] + 1, u[step]
    return counts


def shot_noise(x, severity, generators):
    """Poisson noise: ``Poisson(c · x / 255) · 255 / c``.

    Integer-valued images (8-bit ones) draw by inversion of the 256 levels' CDFs (float64
    uniforms, exact in law up to float64 rounding); other values through ``torch.poisson``.
    """
    c = _SHOT_NOISE[severity - 1]
    x = _prepare(x, generators)
    levels = x.round().clamp_(0, 255)
    if torch.equal(levels, x):
        u = _draw(x, generators, torch.rand, torch.float64).flatten()
        counts = _poisson_levels(levels.int().flatten(), c, u).view(x.shape).to(x.dtype)
    else:
        rates = x.detach().cpu() * (c / 255)
        counts = torch.stack([torch.poisson(r, generator=g)
                              for r, g in zip(rates, generators)]).to(x.device)
    return (counts * (255 / c)).clamp_(0, 255)


def impulse_noise(x, severity, generators):
    """Salt-and-pepper noise: each value becomes 0 or 255 with probability c/2 each."""
    c = _IMPULSE_NOISE[severity - 1]
    x = _prepare(x, generators)
    u = _draw(x, generators, torch.rand)
    return torch.where(u < c, (u >= c / 2).float().mul_(255), x)


def _impulse_noise_uint8(x, severity, generators):
    """:func:`impulse_noise` of a uint8 CPU batch (the same bytes): ``x·[u ≥ c] + 255·[c/2 ≤ u
    < c]`` in numpy (float32 comparisons, as torch's with a Python float)."""
    c = np.float32(_IMPULSE_NOISE[severity - 1])
    half = np.float32(_IMPULSE_NOISE[severity - 1] / 2)

    def combine(u, img):
        keep = u >= c
        out = np.multiply(img, keep)
        out += np.uint8(255) * ((u >= half) ^ keep)
        return out

    return _noise_uint8(x, generators, torch.rand, combine)


impulse_noise.uint8_cpu = _impulse_noise_uint8


def speckle_noise(x, severity, generators):
    """Multiplicative Gaussian noise: ``x · (1 + c · N(0, 1))``."""
    c = _SPECKLE_NOISE[severity - 1]
    x = _prepare(x, generators)
    return _draw(x, generators, torch.randn).mul_(c).add_(1).mul_(x).clamp_(0, 255)


def _speckle_noise_uint8(x, severity, generators):
    """:func:`speckle_noise` of a uint8 CPU batch (the same bytes, float32 numpy arithmetic)."""
    c = np.float32(_SPECKLE_NOISE[severity - 1])

    def combine(n, img):
        n *= c
        n += np.float32(1)
        return np.multiply(n, img, out=n)

    return _noise_uint8(x, generators, torch.randn, combine)


speckle_noise.uint8_cpu = _speckle_noise_uint8


def gaussian_blur(x, severity, generators):
    """Gaussian blur of σ = c pixels (deterministic; ``generators`` is only checked)."""
    x = _prepare(x, generators)
    return _gaussian_filter(x, _GAUSSIAN_BLUR[severity - 1]).clamp_(0, 255)


def _glass_sources(offsets, h, w, delta):
    """Where each pixel's value comes from after the reference's pixel "swaps".

    The reference's ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on numpy views copies
    ``x[h', w']`` into ``x[h, w]`` and leaves ``x[h', w']`` unchanged. Visits run in decreasing
    raster order, so a pixel whose neighbour was visited before it (later in raster order) takes
    that neighbour's final value, and otherwise the neighbour's untouched one: each pixel follows
    that chain to its end, found here for all pixels at once by pointer jumping.

    Args:
        offsets (Tensor): (N, iterations, H - 2δ, W - 2δ, 2) int64 ``(dx, dy)`` in [-δ, δ) for
            the visit of row ``H - δ - r``, column ``W - δ - k`` at index ``[.., r, k, :]``.
        h, w (int): image size.
        delta (int): the largest offset δ.

    Returns:
        Tensor: (N, H·W) int64, the flat index of the input pixel each output pixel copies.
    """
    n, iterations = offsets.shape[:2]
    device = offsets.device
    rows = torch.arange(h - delta, delta, -1, device=device)[:, None]
    cols = torch.arange(w - delta, delta, -1, device=device)[None]
    pos = (rows * w + cols).flatten()
    identity = torch.arange(h * w, device=device).expand(n, -1)
    source = identity
    for it in range(iterations):
        ty, tx = rows + offsets[:, it, ..., 1], cols + offsets[:, it, ..., 0]
        target = (ty * w + tx).flatten(1)
        visited = (ty > delta) & (ty <= h - delta) & (tx > delta) & (tx <= w - delta)
        chained = visited.flatten(1) & (target > pos)
        copy, jump = identity.clone(), identity.clone()
        copy[:, pos] = target
        jump[:, pos] = torch.where(chained, target, pos)
        while True:  # the chains' ends: jump to the fixed point
            nxt = jump.gather(1, jump)
            if torch.equal(nxt, jump):
                break
            jump = nxt
        source = source.gather(1, copy.gather(1, jump))
    return source


def glass_blur(x, severity, generators):
    """Gaussian blur, local random pixel copies (on the image truncated to integers), blur.

    As in the reference, the severities are not ordered by damage on every image: on photos,
    severity 2 is usually milder than 1 and 4 milder than 3 (PSNR to the clean image).
    """
    sigma, delta, iterations = _GLASS_BLUR[severity - 1]
    x = _prepare(x, generators)
    b, ch, h, w = x.shape
    out = _gaussian_filter(x, sigma).clamp_(0, 255).floor_()
    rows, cols = h - 2 * delta, w - 2 * delta
    if rows > 0 and cols > 0:
        offsets = torch.stack([torch.randint(-delta, delta, (iterations, rows, cols, 2),
                                             generator=g) for g in generators])
        source = _glass_sources(offsets.to(x.device), h, w, delta)
        out = out.flatten(2).gather(2, source[:, None].expand(b, ch, h * w)).view(b, ch, h, w)
    return _gaussian_filter(out, sigma).clamp_(0, 255)


def _defocus_kernel(severity):
    """The reference's defocus kernel: a normalised disk, smoothed by a small Gaussian
    (3×3, or 5×5 for radius > 8) with reflect-101 borders, on a (17, 17) grid (radius ≤ 8) or a
    (2·radius + 1)² one. Returns a float32 (k, k) tensor."""
    radius, alias = _DEFOCUS_BLUR[severity - 1]
    half = max(8, radius)
    ax = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((ax[:, None] ** 2 + ax[None] ** 2) <= radius ** 2).double()
    disk = (disk / disk.sum())[None, None]
    size = 3 if radius <= 8 else 5
    g = torch.exp(-(torch.arange(size, dtype=torch.float64) - size // 2) ** 2 / (2 * alias ** 2))
    g = g / g.sum()
    padded = F.pad(disk, (size // 2,) * 4, mode='reflect')
    smooth = F.conv2d(F.conv2d(padded, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    return smooth[0, 0].float()


def defocus_blur(x, severity, generators):
    """Defocus: correlation with an anti-aliased disk (deterministic)."""
    x = _prepare(x, generators)
    return filter2d(x, _defocus_kernel(severity)[None].to(x.device)).clamp_(0, 255)


def _motion_taps(severity, angle, h, w):
    """The reference's motion-blur taps ``(weight, dy, dx)`` for an angle in degrees: tap ``i``
    reads the image ``(dy, dx)`` pixels back along the angle, with Gaussian weight of ``i``."""
    radius, sigma = _MOTION_BLUR[severity - 1]
    width = 2 * radius + 1
    weights = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    weights /= weights.sum()
    py, px = width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle))
    hypot = math.hypot(py, px)
    taps = []
    for i in range(width):
        dy, dx = -math.ceil(i * py / hypot - 0.5), -math.ceil(i * px / hypot - 0.5)
        if abs(dy) >= h or abs(dx) >= w:
            break
        taps.append((float(weights[i]), dy, dx))
    return taps


def _motion(img, severity, angle):
    """Motion-blur (1, C, H, W) along ``angle`` degrees: the weighted sum of the shifted copies
    (borders replicated)."""
    h, w = img.shape[-2:]
    taps = _motion_taps(severity, angle, h, w)
    p = max(max(abs(dy), abs(dx)) for _, dy, dx in taps)
    padded = F.pad(img, (p, p, p, p), mode='replicate')
    out = torch.zeros_like(img)
    for weight, dy, dx in taps:
        out.add_(padded[..., p - dy:p - dy + h, p - dx:p - dx + w], alpha=weight)
    return out


def motion_blur(x, severity, generators):
    """Motion blur along a random angle in [-45°, 45°) (one per image)."""
    x = _prepare(x, generators)
    angles = [float(torch.empty((), dtype=torch.float64).uniform_(-45, 45, generator=g))
              for g in generators]
    out = [_motion(img[None], severity, a) for img, a in zip(x, angles)]
    return torch.cat(out).clamp_(0, 255)


def zoom_blur(x, severity, generators):
    """Average of the image and centre crops zoomed back by each factor of the severity."""
    x = _prepare(x, generators)
    factors = np.arange(*_ZOOM_BLUR[severity - 1])
    h, w = x.shape[-2:]
    acc = x.clone()
    for z in factors:
        ch, cw = int(np.ceil(h / float(z))), int(np.ceil(w / float(z)))
        top, left = (h - ch) // 2, (w - cw) // 2
        layer = x[..., top:top + ch, left:left + cw]
        size = (int(round(ch * float(z))), int(round(cw * float(z))))
        if size != (ch, cw):
            layer = F.interpolate(layer, size=size, mode='bilinear', align_corners=True)
        acc += layer[..., :h, :w]
    return (acc / (len(factors) + 1)).clamp_(0, 255)
