"""Blur kernels of the Real-ESRGAN degradation, built in batches with torch.

Every kernel is built on a ``pad_to`` × ``pad_to`` grid (21 in Real-ESRGAN) and is zero outside
its own support of ``size`` × ``size`` pixels, so kernels of different sizes stack into one
tensor. On the support the values are those of basicsr's ``bivariate_Gaussian``,
``bivariate_generalized_Gaussian``, ``bivariate_plateau`` and ``circular_lowpass_kernel``:
``x`` is the column offset and ``y`` the row offset from the centre, ``Σ = R(θ) diag(σx², σy²)
R(θ)ᵀ`` and ``Q = [x y] Σ⁻¹ [x y]ᵀ``.
"""
import functools
import math

import torch
import torch.nn.functional as F

KERNEL_TYPES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                'plateau_aniso', 'sinc', 'pulse')
KERNEL_TYPE_INDEX = {name: i for i, name in enumerate(KERNEL_TYPES)}


def _grid(pad_to, device, dtype):
    ax = torch.arange(pad_to, device=device, dtype=dtype) - (pad_to - 1) / 2
    yy, xx = torch.meshgrid(ax, ax, indexing='ij')
    return xx, yy


def build_kernels(kernel_type, size, sigma_x, sigma_y, theta, beta, omega_c, pad_to=21,
                  device=None, dtype=torch.float32):
    """Build a batch of normalised blur kernels.

    Args:
        kernel_type (Tensor): (B,) int64 indices into :data:`KERNEL_TYPES`.
        size (Tensor): (B,) odd kernel sizes, each ≤ ``pad_to``.
        sigma_x, sigma_y, theta (Tensor): (B,) Gaussian widths in pixels and rotation in
            radians (used by the Gaussian, generalized and plateau types; the ``*_iso`` types
            use ``sigma_y = sigma_x`` and ``theta = 0``).
        beta (Tensor): (B,) shape parameter of the generalized and plateau types.
        omega_c (Tensor): (B,) cut-off frequency of the sinc type, in radians per pixel.
        pad_to (int): side of the returned kernels (odd).
        device (torch.device | None): device of the result.
        dtype (torch.dtype): floating dtype of the result.

    Returns:
        Tensor: (B, pad_to, pad_to) kernels, each summing to 1.
    """
    args = [torch.as_tensor(a, device=device) for a in
            (kernel_type, size, sigma_x, sigma_y, theta, beta, omega_c)]
    kernel_type, size = args[0].long(), args[1].long()
    sigma_x, sigma_y, theta, beta, omega_c = (a.to(dtype).view(-1, 1, 1) for a in args[2:])
    t = kernel_type.view(-1, 1, 1)
    idx = KERNEL_TYPE_INDEX
    iso = (t == idx['iso']) | (t == idx['generalized_iso']) | (t == idx['plateau_iso'])
    sigma_y = torch.where(iso, sigma_x, sigma_y)
    theta = torch.where(iso, torch.zeros_like(theta), theta)
    xx, yy = _grid(pad_to, kernel_type.device, dtype)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # rotated coordinates: Q = (u / σx)² + (v / σy)² with [u v] = R(θ)ᵀ [x y]
    u = cos * xx + sin * yy
    v = -sin * xx + cos * yy
    q = (u / sigma_x) ** 2 + (v / sigma_y) ** 2
    gaussian = torch.exp(-0.5 * q)
    generalized = torch.exp(-0.5 * q.pow(beta))
    plateau = 1 / (q.pow(beta) + 1)
    r = torch.sqrt(xx ** 2 + yy ** 2)
    r_safe = torch.where(r == 0, torch.ones_like(r), r)
    sinc = omega_c * torch.special.bessel_j1(omega_c * r_safe) / (2 * math.pi * r_safe)
    sinc = torch.where(r == 0, omega_c ** 2 / (4 * math.pi), sinc)
    pulse = (r == 0).to(dtype).expand_as(sinc)
    kernel = torch.where((t == idx['iso']) | (t == idx['aniso']), gaussian, pulse)
    kernel = torch.where((t == idx['generalized_iso']) | (t == idx['generalized_aniso']),
                         generalized, kernel)
    kernel = torch.where((t == idx['plateau_iso']) | (t == idx['plateau_aniso']), plateau, kernel)
    kernel = torch.where(t == idx['sinc'], sinc, kernel)
    half = (size.view(-1, 1, 1) - 1) / 2
    support = (xx.abs() <= half) & (yy.abs() <= half)
    kernel = kernel * support
    return kernel / kernel.sum(dim=(1, 2), keepdim=True)


def _pad(img, pad):
    """Reflect padding (basicsr's); beyond what a small image can reflect, replicate.

    The first ``side - 1`` padded pixels are always the reflection, so the result of a kernel
    does not depend on how far the padding goes (batched and per-image results agree).
    """
    if pad == 0:
        return img
    h, w = img.shape[-2:]
    ph, pw = min(pad, h - 1), min(pad, w - 1)
    if ph or pw:
        img = F.pad(img, (pw, pw, ph, ph), mode='reflect')
    if ph < pad or pw < pad:
        img = F.pad(img, (pad - pw, pad - pw, pad - ph, pad - ph), mode='replicate')
    return img


def crop_to_support(kernels):
    """Drop the all-zero border shared by a batch of centred kernels.

    Args:
        kernels (Tensor): (B, k, k) centred kernels.

    Returns:
        Tensor: (B, k', k') the smallest centred crop holding every non-zero value.
    """
    k = kernels.shape[-1]
    half = int(support_halves(kernels).max())
    c = (k - 1) // 2
    return kernels[:, c - half:c + half + 1, c - half:c + half + 1]


def support_halves(kernels):
    """(B,) half-side of each centred kernel's support (0 for a pulse or an all-zero kernel)."""
    k = kernels.shape[-1]
    ax = (torch.arange(k, device=kernels.device) - (k - 1) // 2).abs()
    dist = torch.maximum(ax[:, None], ax[None, :])
    return torch.where(kernels != 0, dist, 0).flatten(1).amax(dim=1)


@functools.lru_cache(maxsize=None)
def fast_fft_length(n):
    """The smallest 5-smooth length (2^a 3^b 5^c) >= ``n``: FFTs of such lengths are fast."""
    best = 1 << max(int(n) - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _fft_correlate(padded, kernels, out_hw, fast):
    """Valid correlation of (B, C, H', W') with (B, k, k) kernels through real FFTs.

    With ``fast`` the transforms run at 5-smooth lengths ≥ (H', W') (zero padding at the end
    only touches the discarded border), otherwise at exactly (H', W').
    """
    hp, wp = padded.shape[-2:]
    size = (fast_fft_length(hp), fast_fft_length(wp)) if fast else (hp, wp)
    k = kernels.shape[-1]
    spec = (torch.fft.rfft2(padded, s=size)
            * torch.fft.rfft2(kernels.flip(-1, -2)[:, None], s=size))
    out = torch.fft.irfft2(spec, s=size)
    return out[..., k - 1:k - 1 + out_hw[0], k - 1:k - 1 + out_hw[1]]


def filter2d(img, kernels):
    """Correlate each image with its own kernel (basicsr's ``filter2D``), reflect padding.

    The zero border of padded kernels is cropped first (same result, fewer operations). On
    CUDA the batch runs as one grouped ``F.conv2d`` (kernels cropped to their common support).
    On CPU every image is filtered with its own cropped kernel through real FFTs (the same
    result to ~1e-7 in float32, ~1e-15 in float64, many times faster than a convolution);
    images whose kernels have the same support run as one batched FFT, so an image's result
    does not depend on the rest of its batch. float32 transforms use fast (5-smooth) lengths;
    float64 ones keep the exact padded size, so deterministic evaluation images are unchanged.

    Args:
        img (Tensor): (B, C, H, W) images.
        kernels (Tensor): (B, k, k) or (1, k, k) kernels with odd ``k``.

    Returns:
        Tensor: (B, C, H, W) filtered images.
    """
    b, c, h, w = img.shape
    kernels = kernels.to(img.dtype)
    if img.device.type == 'cpu':
        kernels = kernels.expand(b, -1, -1)
        halves = support_halves(kernels).tolist()
        out = torch.empty_like(img, memory_format=torch.contiguous_format)
        centre = (kernels.shape[-1] - 1) // 2
        for half in sorted(set(halves)):
            idx = [i for i, v in enumerate(halves) if v == half]
            sel = torch.tensor(idx) if len(idx) < b else slice(None)
            k = kernels[sel, centre - half:centre + half + 1, centre - half:centre + half + 1]
            if half == 0:
                out[sel] = img[sel] * k.reshape(-1, 1, 1, 1)
            else:
                out[sel] = _fft_correlate(_pad(img[sel], half), k, (h, w),
                                          fast=img.dtype != torch.float64)
        return out
    kernels = crop_to_support(kernels)
    k = kernels.shape[-1]
    if k == 1:
        return img * kernels.view(-1, 1, 1, 1)
    padded = _pad(img, k // 2)
    if kernels.shape[0] == 1:
        out = F.conv2d(padded.reshape(b * c, 1, h + k - 1, w + k - 1), kernels.view(1, 1, k, k))
    else:
        weight = kernels.view(b, 1, k, k).repeat_interleave(c, dim=0)
        out = F.conv2d(padded.reshape(1, b * c, h + k - 1, w + k - 1), weight, groups=b * c)
    return out.view(b, c, h, w)
