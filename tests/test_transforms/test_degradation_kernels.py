"""Blur kernels and filtering of the degradation pipeline against closed forms."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import special

from mmseg_rass.transforms.degradation_kernels import (KERNEL_TYPE_INDEX, build_kernels,
                                                        crop_to_support, fast_fft_length,
                                                        filter2d)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _kernels(types, size=21, sx=2.0, sy=2.0, theta=0.0, beta=1.0, omega=math.pi / 2,
             dtype=torch.float64):
    n = len(types)
    full = lambda v: torch.full((n,), float(v), dtype=torch.float64)  # noqa: E731
    return build_kernels(torch.tensor([KERNEL_TYPE_INDEX[t] for t in types]),
                         torch.full((n,), size), full(sx), full(sy), full(theta), full(beta),
                         full(omega), dtype=dtype)


def _moments(k):
    ax = torch.arange(k.shape[-1], dtype=k.dtype) - (k.shape[-1] - 1) / 2
    yy, xx = torch.meshgrid(ax, ax, indexing='ij')
    return [(k * a * b).sum().item() for a, b in ((xx, xx), (yy, yy), (xx, yy))]


def test_kernels_sum_to_one_and_isotropic_ones_are_symmetric():
    types = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
             'plateau_aniso', 'sinc', 'pulse']
    k = _kernels(types, sx=1.5, sy=0.7, theta=0.4, beta=1.7)
    assert k.shape == (8, 21, 21)
    torch.testing.assert_close(k.sum(dim=(1, 2)), torch.ones(8, dtype=k.dtype))
    iso = _kernels(['iso', 'generalized_iso', 'plateau_iso', 'sinc'], sx=1.3, beta=0.8)
    for kk in iso:
        torch.testing.assert_close(kk, kk.T)
        torch.testing.assert_close(kk, kk.flip(0))
    assert k[7, 10, 10] == 1 and k[7].count_nonzero() == 1


def test_gaussian_sigma_and_rotation_recovered_from_second_moments():
    k = _kernels(['iso'], sx=1.8)[0]
    mxx, myy, mxy = _moments(k)
    assert mxx == pytest.approx(1.8 ** 2, rel=1e-3) and myy == pytest.approx(1.8 ** 2, rel=1e-3)
    assert abs(mxy) < 1e-12
    sx, sy, theta = 2.5, 1.0, 0.6
    mxx, myy, mxy = _moments(_kernels(['aniso'], sx=sx, sy=sy, theta=theta)[0])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = rot @ np.diag([sx ** 2, sy ** 2]) @ rot.T
    np.testing.assert_allclose([[mxx, mxy], [mxy, myy]], cov, rtol=1e-2, atol=1e-2)


def test_generalized_and_plateau_match_closed_form():
    sx, sy, theta, beta = 2.0, 1.2, 0.3, 1.6
    ax = np.arange(-10, 11.)
    xx, yy = np.meshgrid(ax, ax)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sx ** 2, sy ** 2]) @ rot.T)
    grid = np.stack([xx, yy], -1)
    q = np.sum(grid @ inv * grid, -1)
    gen, plat = np.exp(-0.5 * q ** beta), 1 / (q ** beta + 1)
    k = _kernels(['generalized_aniso', 'plateau_aniso'], sx=sx, sy=sy, theta=theta, beta=beta)
    np.testing.assert_allclose(k[0].numpy(), gen / gen.sum(), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(k[1].numpy(), plat / plat.sum(), rtol=1e-9, atol=1e-15)


def test_sinc_matches_bessel_form_and_cuts_off():
    omega, size = math.pi / 2, 13
    k = _kernels(['sinc'], size=size, omega=omega)[0]
    assert k[:4].abs().sum() == 0 and k[:, -4:].abs().sum() == 0  # padded from 13 to 21
    ax = np.arange(size) - (size - 1) / 2
    r = np.sqrt(ax[None] ** 2 + ax[:, None] ** 2)
    with np.errstate(invalid='ignore', divide='ignore'):
        ref = omega * special.j1(omega * r) / (2 * np.pi * r)
    ref[size // 2, size // 2] = omega ** 2 / (4 * np.pi)
    # torch's bessel_j1 is accurate to ~1e-7
    np.testing.assert_allclose(k[4:17, 4:17].numpy(), ref / ref.sum(), rtol=1e-5, atol=1e-7)
    # frequency response of the 21-tap kernel: pass band below ωc, stop band above
    big = _kernels(['sinc'], size=21, omega=omega)[0]
    resp = torch.fft.fft2(big, s=(256, 256)).abs()
    freq = lambda w: int(round(w / (2 * math.pi) * 256))  # noqa: E731
    assert resp[0, freq(0.5 * omega)] > 0.9 and resp[freq(0.5 * omega), 0] > 0.9
    assert resp[0, freq(1.6 * omega)] < 0.1 and resp[freq(1.6 * omega), 0] < 0.1


def test_filter2d_paths_agree_with_conv2d_and_pulse_is_identity():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 40, 50, dtype=torch.float64)
    k = _kernels(['aniso', 'plateau_iso'], size=21, sx=2.0, sy=0.8, theta=0.5)
    ref = torch.stack([F.conv2d(F.pad(img[i:i + 1], (10,) * 4, mode='reflect').transpose(0, 1),
                                k[i][None, None])[:, 0] for i in range(2)])
    torch.testing.assert_close(filter2d(img, k), ref)  # FFT path (float64)
    torch.testing.assert_close(filter2d(img.float(), k.float()), ref.float(), atol=1e-5,
                               rtol=1e-5)  # FFT path (float32, k > 11)
    small = _kernels(['iso', 'iso'], size=7, sx=1.0, dtype=torch.float32)
    assert crop_to_support(small).shape == (2, 7, 7)
    ref7 = F.conv2d(F.pad(img.float(), (3,) * 4, mode='reflect').view(6, 1, 46, 56),
                    crop_to_support(small)[:1, None]).view(2, 3, 40, 50)
    torch.testing.assert_close(filter2d(img.float(), small), ref7)  # float32 FFT, fast length
    # mixed supports in one batch: each image as if alone (float32 and float64)
    mixed = torch.cat([small.double()[:1], k[1:]])
    for x in (img, img.float()):
        alone = torch.cat([filter2d(x[i:i + 1], mixed[i:i + 1]) for i in range(2)])
        assert torch.equal(filter2d(x, mixed), alone)
    assert [fast_fft_length(n) for n in (1, 7, 11, 518, 1030, 1063)] == [1, 8, 12, 540, 1080, 1080]
    torch.testing.assert_close(filter2d(img, _kernels(['pulse', 'pulse'])), img)
    tiny = torch.rand(1, 3, 5, 9)  # too small to reflect a 21-tap kernel: replicate padding
    out = filter2d(tiny, _kernels(['iso'], dtype=torch.float32))
    assert out.shape == tiny.shape and torch.isfinite(out).all()
