"""The ImageNet-C noise and blur corruptions, each against a hand-computed or reference value."""
import math

import numpy as np
import pytest
import torch

from mmseg_rass.transforms import imagenet_c_noise_blur as nb

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _gens(n, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def _flat(value, size=64):
    return torch.full((1, 3, size, size), float(value))


def _random_image(h=40, w=48, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (1, 3, h, w))).float()


def _to_hwc_uint8(x):
    return x.clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize('severity', [1, 2, 3])
def test_gaussian_noise_sigma(severity):
    out = nb.gaussian_noise(_flat(128), severity, _gens(1))
    sigma = 255 * (0.08, 0.12, 0.18)[severity - 1]
    assert abs(float(out.std()) / sigma - 1) < 0.03 and abs(float(out.mean()) - 128) < 1.5


def test_shot_noise_is_scaled_poisson():
    c = 60  # severity 1
    out = nb.shot_noise(_flat(128), 1, _gens(1))
    counts = out * c / 255
    assert torch.allclose(counts, counts.round(), atol=1e-3)
    assert abs(float(counts.mean()) / (128 * c / 255) - 1) < 0.01
    assert abs(float(counts.var()) / (128 * c / 255) - 1) < 0.05  # Poisson: variance = mean


@pytest.mark.parametrize('c', [60, 3])
def test_poisson_inversion_is_the_inverse_cdf(c):
    """Every uniform, bucket edges and CDF values themselves included, gives the number of CDF
    values ≤ it (the inverse CDF of Poisson(v / 255 · c))."""
    cdf, _ = nb._poisson_tables(c, torch.device('cpu'))
    cdf = cdf.view(256, -1)
    levels = torch.arange(256, dtype=torch.int32).repeat_interleave(60)
    g = torch.Generator().manual_seed(c)
    u = torch.rand(len(levels), dtype=torch.float64, generator=g)
    u[::3] = torch.randint(0, 1 << nb._GUIDE_BITS, (len(u[::3]),), generator=g).double() / (
        1 << nb._GUIDE_BITS)  # bucket edges
    on_cdf = cdf[levels[1::3].long(), torch.randint(0, 8, (len(u[1::3]),), generator=g)]
    u[1::3] = torch.where(on_cdf < 1, on_cdf, u[1::3])  # exactly a CDF value
    expected = torch.searchsorted(cdf[levels.long()], u[:, None], right=True)[:, 0]
    assert torch.equal(nb._poisson_levels(levels, c, u), expected.int())
    # the tables: the exact Poisson CDF (float64 rounding), the tail beyond them negligible
    lam = torch.arange(256, dtype=torch.float64) / 255 * c
    k = torch.arange(cdf.shape[1] - 1, dtype=torch.float64)
    pmf = torch.exp(k * torch.log(lam[1:, None]) - lam[1:, None] - torch.lgamma(k + 1))
    torch.testing.assert_close(cdf[1:, :-1], pmf.cumsum(1), rtol=1e-12, atol=1e-14)
    assert float(1 - cdf[-1, -2]) < 1e-15 and bool((cdf[0] == 1).all())


def test_shot_noise_frequencies_are_poisson():
    c, level = 12, 200  # severity 3
    out = nb.shot_noise(torch.full((1, 3, 256, 256), float(level)), 3, _gens(1))
    counts = (out * c / 255).round().long().flatten()
    lam = level / 255 * c
    freq = torch.bincount(counts, minlength=c + 1).double() / counts.numel()
    pmf = torch.tensor([math.exp(k * math.log(lam) - lam - math.lgamma(k + 1)) for k in range(c)])
    pmf = torch.cat([pmf, 1 - pmf.sum(0, keepdim=True)])  # counts over c clip at 255
    assert len(freq) == c + 1
    n = counts.numel()  # each frequency within 5 binomial standard errors
    assert bool(((freq - pmf).abs() <= 5 * (pmf * (1 - pmf) / n).sqrt() + 1 / n).all())
    # non-integer values: torch.poisson, the same law
    frac = nb.shot_noise(torch.full((1, 3, 64, 64), 127.5), 3, _gens(1)) * c / 255
    assert abs(float(frac.mean()) / (127.5 * c / 255) - 1) < 0.02


def test_impulse_noise_fractions():
    c = 0.17  # severity 4
    out = nb.impulse_noise(_flat(100), 4, _gens(1))
    pepper, salt = float((out == 0).float().mean()), float((out == 255).float().mean())
    assert abs(pepper - c / 2) < 0.01 and abs(salt - c / 2) < 0.01
    assert bool(((out == 0) | (out == 255) | (out == 100)).all())


@pytest.mark.parametrize('name', ['gaussian_noise', 'impulse_noise', 'speckle_noise'])
def test_noise_uint8_shortcut_gives_the_float_path_bytes(name):
    x = _random_image(24, 40, seed=5).to(torch.uint8).expand(2, -1, -1, -1)
    fn = getattr(nb, name)
    for s in range(1, 6):
        fast = fn.uint8_cpu(x, s, _gens(2))
        assert fast.dtype == torch.uint8 and fast.shape == x.shape
        assert torch.equal(fast, fn(x.float(), s, _gens(2)).clamp(0, 255).to(torch.uint8))


def test_impulse_noise_uint8_thresholds_match_at_the_boundaries(monkeypatch):
    """Uniforms on and next to float32(c) and float32(c / 2): both paths classify them alike."""
    x = _flat(100, 8).to(torch.uint8)
    for s, c in enumerate(nb._IMPULSE_NOISE, 1):
        edges = [np.float32(c), np.float32(c / 2)]
        values = torch.tensor([np.nextafter(e, d) for e in edges for d in (0, e, 1)],
                              dtype=torch.float32).repeat(x.numel() // 6 + 1)[:x.numel()]

        def fake_rand(shape, generator=None, out=None):
            u = values.view(shape).clone()
            return u if out is None else out.copy_(u)

        monkeypatch.setattr(torch, 'rand', fake_rand)
        fast = nb.impulse_noise.uint8_cpu(x, s, _gens(1))
        slow = nb.impulse_noise(x.float(), s, _gens(1)).to(torch.uint8)
        monkeypatch.undo()
        assert torch.equal(fast, slow) and set(fast.unique().tolist()) == {0, 100, 255}


def test_speckle_noise_is_multiplicative():
    out = nb.speckle_noise(_flat(100), 1, _gens(1))
    assert abs(float(out.std()) / (100 * 0.15) - 1) < 0.03
    assert torch.equal(nb.speckle_noise(_flat(0), 5, _gens(1)), _flat(0))


def test_gaussian_blur_is_a_separable_gaussian():
    x = _random_image()
    out = nb.gaussian_blur(x, 1, _gens(1))[0].double().numpy()  # σ = 1, radius 4
    k = np.exp(-0.5 * np.arange(-4, 5) ** 2)
    k /= k.sum()
    p = np.pad(x[0].double().numpy(), ((0, 0), (4, 4), (4, 4)), mode='edge')
    rows = sum(k[i] * p[:, :, i:i + 48] for i in range(9))
    expected = sum(k[i] * rows[:, i:i + 40] for i in range(9))
    np.testing.assert_allclose(out, expected, atol=2e-3)


def test_defocus_kernel_is_a_normalised_disk():
    k1 = nb._defocus_kernel(1).double()  # radius 3, alias blur 0.1 (negligible)
    yy, xx = np.mgrid[-8:9, -8:9]
    disk = ((yy ** 2 + xx ** 2) <= 9).astype(np.float64)
    np.testing.assert_allclose(k1.numpy(), disk / disk.sum(), atol=1e-7)
    for s in (2, 3):  # anti-aliased, still inside the 17×17 grid
        k = nb._defocus_kernel(s).double()
        assert abs(float(k.sum()) - 1) < 1e-6 and torch.equal(k, k.flip(0)) and torch.equal(k, k.T)
    assert nb._defocus_kernel(5).shape == (21, 21)


def test_defocus_blur_of_a_point_is_the_kernel():
    x = torch.zeros(1, 3, 41, 41)
    x[..., 20, 20] = 255
    out = nb.defocus_blur(x, 3, _gens(1))
    torch.testing.assert_close(out[0, 1, 12:29, 12:29], 255 * nb._defocus_kernel(3),
                               atol=1e-3, rtol=0)
    assert float(out.sum()) == pytest.approx(3 * 255, rel=1e-5)


def test_motion_blur_of_a_point_spreads_along_the_angle():
    x = torch.zeros(1, 3, 96, 96)
    x[..., 48, 60] = 255
    for angle in (-40.0, 0.0, 25.0):
        out = nb._motion(x, 5, angle)[0, 0]  # radius 20: 41 taps
        ys, xs = torch.nonzero(out > 0, as_tuple=True)
        oy, ox = (ys - 48).double(), (xs - 60).double()
        a = math.radians(angle)
        # the point moves back along (-sin a, -cos a), no more than half a pixel off that line
        off_line = (oy * math.cos(a) - ox * math.sin(a)).abs()
        assert bool((ox <= 0).all()) and bool((off_line <= 0.75).all())
        assert float(-ox.min()) >= 39 * math.cos(a) and float(out[48, 60]) > 0
        assert float(out.sum()) == pytest.approx(255, rel=1e-5)
    outs = [nb.motion_blur(x, 5, _gens(1, seed)) for seed in range(3)]
    # the angle is drawn per image
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2])


def test_zoom_blur_keeps_a_constant_image_and_blurs_more_away_from_the_centre():
    out = nb.zoom_blur(_flat(77, 48), 5, _gens(1))
    torch.testing.assert_close(out, _flat(77, 48), atol=1e-3, rtol=0)
    yy, xx = torch.meshgrid(torch.arange(64.), torch.arange(64.), indexing='ij')
    x = (127 + 100 * torch.sin(xx / 3) * torch.cos(yy / 4)).expand(1, 3, 64, 64)
    diff = (nb.zoom_blur(x, 5, _gens(1)) - x).abs()[0, 0]
    assert float(diff[28:36, 28:36].mean()) < 0.35 * float(diff[:8].mean())


def _reference_swaps(offsets, img, delta):
    """The reference's loop, in structure verbatim, on an (H, W, C) numpy image."""
    x = img.copy()
    h, w = x.shape[:2]
    for it in range(offsets.shape[0]):
        for row in range(h - delta, delta, -1):
            for col in range(w - delta, delta, -1):
                dx, dy = offsets[it, h - delta - row, w - delta - col]
                r2, c2 = row + dy, col + dx
                x[row, col], x[r2, c2] = x[r2, c2], x[row, col]  # numpy views: a copy
    return x


@pytest.mark.parametrize('h,w,delta,iterations', [(16, 21, 1, 2), (25, 19, 2, 3), (30, 28, 4, 2)])
def test_glass_sources_equal_the_reference_loop(h, w, delta, iterations):
    rng = np.random.default_rng(h)
    offsets = rng.integers(-delta, delta, (2, iterations, h - 2 * delta, w - 2 * delta, 2))
    sources = nb._glass_sources(torch.from_numpy(offsets), h, w, delta).numpy()
    img = np.stack([np.arange(h * w) // w, np.arange(h * w) % w], -1).reshape(h, w, 2)
    for n in range(2):
        expected = _reference_swaps(offsets[n], img, delta)
        np.testing.assert_array_equal(sources[n], (expected[..., 0] * w + expected[..., 1]).ravel())
    assert len(np.unique(sources[0])) < h * w  # copies, not a permutation


def test_glass_blur_is_blur_copy_blur():
    x = _random_image(32, 36)
    out = nb.glass_blur(x, 2, _gens(1))  # σ 0.9, δ 2, one pass
    blurred = nb._gaussian_filter(x, 0.9).floor()
    offsets = torch.randint(-2, 2, (1, 1, 28, 32, 2), generator=_gens(1)[0])
    moved = _reference_swaps(offsets[0].numpy(), blurred[0].permute(1, 2, 0).numpy(), 2)
    expected = nb._gaussian_filter(torch.from_numpy(moved).permute(2, 0, 1)[None], 0.9)
    torch.testing.assert_close(out, expected.clamp(0, 255))
    assert not torch.allclose(out, nb._gaussian_filter(blurred, 0.9))


def test_one_generator_per_image():
    with pytest.raises(ValueError, match='2 generators for a batch of 1 images'):
        nb.defocus_blur(_flat(1), 1, _gens(2))


# --- pixel closeness to imagecorruptions 1.1.2 (deterministic parts), when it is installed ---

@pytest.mark.parametrize('name', ['defocus_blur', 'zoom_blur'])
def test_matches_imagecorruptions(name):
    ic = pytest.importorskip('imagecorruptions')
    x = _random_image(48, 56, seed=3)
    for s in (1, 5):
        ours = _to_hwc_uint8(getattr(nb, name)(x, s, _gens(1)))
        ref = ic.corrupt(_to_hwc_uint8(x), s, name)
        # float32 here, float64 there: a value on an integer can truncate one level lower
        assert np.abs(ours.astype(int) - ref).max() <= 1 and np.mean(ours != ref) < 0.05


def test_matches_imagecorruptions_motion_and_gaussian():
    icc = pytest.importorskip('imagecorruptions.corruptions')
    ndimage = pytest.importorskip('scipy.ndimage')
    x = _random_image(48, 56, seed=4)
    img = _to_hwc_uint8(x)
    for s, angle in ((1, -33.3), (5, 12.0)):
        ours = _to_hwc_uint8(nb._motion(x, s, angle))
        radius, sigma = nb._MOTION_BLUR[s - 1]
        ref = icc._motion_blur(img, radius=radius, sigma=sigma, angle=angle)
        ref = np.uint8(np.clip(ref, 0, 255))
        assert np.abs(ours.astype(int) - ref).max() <= 1 and np.mean(ours != ref) < 0.01
    for s in (1, 5):  # the reference's skimage.filters.gaussian is scipy's, borders 'nearest'
        sigma = nb._GAUSSIAN_BLUR[s - 1]
        ref = ndimage.gaussian_filter(img / 255., sigma=(sigma, sigma, 0), mode='nearest',
                                      truncate=4.0)
        ref = np.uint8(np.clip(ref, 0, 1) * 255)
        ours = _to_hwc_uint8(nb.gaussian_blur(x, s, _gens(1)))
        assert np.abs(ours.astype(int) - ref).max() <= 1 and np.mean(ours != ref) < 0.01
    np.testing.assert_allclose(nb._defocus_kernel(5).numpy(), icc.disk(10, 0.5), atol=1e-6)
