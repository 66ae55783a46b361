"""Weather/digital ImageNet-C corruptions against hand-computed values and the reference."""
import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mmseg_rass.transforms import imagenet_c_weather_digital as wd

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _gens(n=1, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def _pixel(*rgb):
    """A 1×1 image of one colour, (1, 3, 1, 1) float."""
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)


@pytest.fixture(scope='module')
def photo():
    """A real RGB photo at 64×96 (uint8 HWC)."""
    from skimage import data
    return cv2.resize(data.astronaut(), (96, 64), interpolation=cv2.INTER_AREA)


def _tensor(img):
    return torch.from_numpy(img).permute(2, 0, 1)[None].float()


def _uint8(out):
    return out.clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def test_brightness_raises_hsv_value():
    # V = 100 → 100 + 0.1·255; H and S kept, so RGB scales by V'/V
    out = wd.brightness(_pixel(100., 50., 25.), 1, _gens())
    assert torch.allclose(out.flatten(), torch.tensor([125.5, 62.75, 31.375]))
    assert torch.allclose(wd.brightness(_pixel(0., 0., 0.), 5, _gens()).flatten(),
                          torch.full((3,), 127.5))
    # V clipped at 1: (250, 125, 0) → V' = 255
    out = wd.brightness(_pixel(250., 125., 0.), 2, _gens())
    assert torch.allclose(out.flatten(), torch.tensor([255., 127.5, 0.]))


def test_saturate_scales_hsv_saturation():
    # V = 200, S = 0.75 → S' = 0.3·0.75: V - RGB shrinks by 0.3
    out = wd.saturate(_pixel(200., 100., 50.), 1, _gens())
    assert torch.allclose(out.flatten(), torch.tensor([200., 170., 155.]))
    # grey has hue 0 (red) in scikit-image: S' = b = 0.2 at severity 5
    out = wd.saturate(_pixel(80., 80., 80.), 5, _gens())
    assert torch.allclose(out.flatten(), torch.tensor([80., 64., 64.]))
    # S clipped at 1 at severity 3 (×2): (200, 50, 100) → S = 0.75 → 1
    out = wd.saturate(_pixel(200., 50., 100.), 3, _gens())
    assert torch.allclose(out.flatten(), torch.tensor([200., 0., 200. - 100. / 0.75]))


def test_contrast_pulls_toward_channel_mean():
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(0)) * 255
    for severity, c in zip(range(1, 6), (0.4, .3, .2, .1, .05)):
        out = wd.contrast(x, severity, _gens(2))
        mean = x.mean((2, 3), keepdim=True)
        assert torch.allclose(out - mean, c * (x - mean), atol=1e-3)


def test_pixelate_keeps_block_constant_image_and_matches_pil():
    blocks = torch.rand(1, 3, 4, 6, generator=torch.Generator().manual_seed(1)).mul(255).round()
    x = blocks.repeat_interleave(10, 2).repeat_interleave(10, 3)  # 40×60, blocks of 10
    assert torch.equal(wd.pixelate(x, 2, _gens()), x)  # c = 0.5: windows of 2 inside a block
    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    for severity, c in zip(range(1, 6), (0.6, 0.5, 0.4, 0.3, 0.25)):
        ref = Image.fromarray(img).resize((int(60 * c), int(40 * c)), Image.BOX).resize(
            (60, 40), Image.NEAREST)
        assert np.array_equal(_uint8(wd.pixelate(_tensor(img), severity, _gens())), np.array(ref))


def test_jpeg_equals_pil_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    for severity, q in zip(range(1, 6), (25, 18, 15, 10, 7)):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, 'JPEG', quality=q)
        ref = np.array(Image.open(buf))
        assert np.array_equal(_uint8(wd.jpeg_compression(_tensor(img), severity, _gens())), ref)


@pytest.mark.parametrize('name', ['pixelate', 'jpeg_compression'])
def test_uint8_cpu_path_equals_the_torch_path_and_pil(photo, name):
    """The uint8 CPU path (Pillow as the reference) gives the torch path's bytes (a batch of
    two sizes where Pillow's ``BOX`` runs its horizontal pass first) and Pillow's own."""
    fn = getattr(wd, name)
    other = np.random.default_rng(1).integers(0, 256, (97, 161, 3), dtype=np.uint8)
    for img in (photo, other):
        x8 = torch.from_numpy(np.stack([img, img[::-1].copy()])).permute(0, 3, 1, 2)
        h, w = img.shape[:2]
        for severity in range(1, 6):
            fast = fn.uint8_cpu(x8, severity, _gens(2))
            assert fast.dtype == torch.uint8 and fast.shape == x8.shape
            assert torch.equal(fast, fn(x8.float(), severity, _gens(2)).clamp(0, 255).to(
                torch.uint8))
            pil = Image.fromarray(img)
            if name == 'pixelate':
                c = (0.6, 0.5, 0.4, 0.3, 0.25)[severity - 1]
                ref = pil.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h),
                                                                             Image.NEAREST)
            else:
                buf = io.BytesIO()
                pil.save(buf, 'JPEG', quality=(25, 18, 15, 10, 7)[severity - 1])
                ref = Image.open(buf)
            assert np.array_equal(fast[0].permute(1, 2, 0).numpy(), np.asarray(ref))


def test_gaussian_matches_scipy():
    ndimage = pytest.importorskip('scipy.ndimage')
    f = np.random.default_rng(0).random((2, 30, 17))
    for sigmas, truncate, mode in (((1.5, 3.), 3., 'reflect'), ((2., 2.), 4., 'nearest'),
                                   ((12., 0.2), 3., 'reflect')):
        ref = np.stack([ndimage.gaussian_filter(a, sigmas, mode=mode, truncate=truncate)
                        for a in f])
        out = wd._gaussian(torch.from_numpy(f), sigmas, truncate, mode).numpy()
        assert np.abs(out - ref).max() < 1e-9


def test_frost_without_package_names_the_install(monkeypatch):
    monkeypatch.setattr(wd.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install imagecorruptions==1\.1\.2'):
        wd.frost(torch.zeros(1, 3, 32, 32), 1, _gens())


def test_frost_adds_scaled_texture(photo):
    pytest.importorskip('imagecorruptions')
    x = _tensor(photo)
    out = wd.frost(x, 3, _gens())  # 0.7·x + 0.7·texture
    texture = (out - 0.7 * x) / 0.7
    assert texture.min() >= -1e-3 and texture.max() <= 255 + 1e-3 and texture.mean() > 60


def test_fog_only_adds_a_plasma_then_rescales(photo):
    x = _tensor(photo)
    for severity, strength in ((1, 1.5), (5, 3.)):
        out = wd.fog(x, severity, _gens())
        top = x.max() / 255
        plasma = (out * (top + strength) / top - x) / (255 * strength)
        # one fog layer shared by the three channels, in [0, 1]
        assert torch.allclose(plasma[:, :1].expand_as(plasma), plasma, atol=1e-4)
        assert plasma.min() >= -1e-4 and plasma.max() <= 1 + 1e-4
    maps = wd._plasma_fractal(_gens(2), 64, 2., 'cpu')
    assert torch.allclose(maps.amin((1, 2)), torch.zeros(2))
    assert torch.allclose(maps.amax((1, 2)), torch.ones(2))


@pytest.mark.parametrize('name', ['fog', 'frost', 'spatter'])
def test_numpy_uint8_cpu_path_gives_the_torch_path_bytes(photo, name):
    """``uint8_cpu`` in numpy gives the float torch path's bytes (for fog: odd, tiny and
    non-square sizes, where the fractal's last level is interleaved only over the crop)."""
    fn = getattr(wd, name)
    other = np.random.default_rng(2).integers(0, 256, (97, 161, 3), dtype=np.uint8)
    for img in (photo, other, other[:2, :3], other[:65, :1]):
        x8 = torch.from_numpy(np.stack([img, img[::-1].copy()])).permute(0, 3, 1, 2)
        for severity in range(1, 6):
            fast = fn.uint8_cpu(x8, severity, _gens(2))
            assert fast.dtype == torch.uint8 and fast.shape == x8.shape
            assert torch.equal(fast, fn(x8.float(), severity, _gens(2)).clamp(0, 255).to(
                torch.uint8))


def test_add_rolled_is_numpy_roll_then_add():
    a, b = np.random.default_rng(3).random((2, 4, 5))
    for shift in (1, -1):
        for axis in (0, 1):
            assert np.array_equal(wd._add_rolled(a, b, shift, axis), a + np.roll(b, shift, axis))


def test_snow_adds_point_symmetric_flakes(photo):
    x = _tensor(photo)
    keep = 0.55
    out = wd.snow(x, 5, _gens())
    grey = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
    flakes = out - (keep * x + (1 - keep) * torch.maximum(x, grey * 1.5 + 127.5))
    assert flakes.min() >= -1e-3 and flakes.max() > 10
    assert torch.allclose(flakes, flakes.flip(-1, -2), atol=1e-3)  # layer + its 180° rotation
    assert torch.allclose(flakes[:, :1].expand_as(flakes), flakes, atol=1e-3)


def test_spatter_water_brightens_in_turquoise_and_mud_blends_to_brown(photo):
    x = _tensor(photo)
    added = wd.spatter(x, 1, _gens()) - x
    assert added.min() >= 0 and added.max() > 0
    drops = added[0, 0] > 1
    assert torch.allclose(added[0, 1][drops] / added[0, 0][drops],
                          torch.full((int(drops.sum()),), 238 / 175), rtol=1e-4)
    out = wd.spatter(x, 5, _gens())
    mud = torch.tensor([63., 42., 20.]).view(1, 3, 1, 1)
    m = (out - x) / (mud - x)  # out = x·(1 - m) + mud·m with one m per pixel
    hit = (out - x).abs().amin(1) > 1
    assert hit.any()
    assert torch.allclose(m[:, 0][hit], m[:, 1][hit], atol=1e-3)
    assert m[:, 0][hit].min() >= 0.8 - 1e-4 and m[:, 0][hit].max() <= 1 + 1e-4


def test_elastic_resamples_like_map_coordinates(photo, monkeypatch):
    ndimage = pytest.importorskip('scipy.ndimage')
    x = torch.full((1, 3, 40, 50), 77.)
    assert torch.allclose(wd.elastic_transform(x, 5, _gens()), x)
    h, w = photo.shape[:2]
    field = np.random.default_rng(0).uniform(-0.005 * h, 0.005 * h, (2, h, w))
    monkeypatch.setattr(wd, '_uniform', lambda g, shape, low, high, device:
                        torch.from_numpy(field).float()[None])
    out = wd.elastic_transform(_tensor(photo), 3, _gens())[0].numpy()
    dx, dy = (ndimage.gaussian_filter(f, (0.01 * h, 0.01 * w), mode='reflect', truncate=3) *
              250 * 0.085 for f in field)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    ref = np.stack([ndimage.map_coordinates(photo[..., c].astype(np.float64),
                                            [rows + dy, cols + dx],
                                            order=1, mode='reflect') for c in range(3)])
    assert np.abs(out - ref).max() < 0.05


@pytest.mark.parametrize('name', ['brightness', 'contrast', 'saturate', 'pixelate',
                                  'jpeg_compression'])
def test_deterministic_ones_match_imagecorruptions(photo, name):
    ic = pytest.importorskip('imagecorruptions')
    for severity in (1, 3, 5):
        ref = ic.corrupt(photo, severity=severity, corruption_name=name)
        out = _uint8(getattr(wd, name)(_tensor(photo), severity, _gens()))
        # HSV: at most one level off, where a value is an integer and one side's rounding lands
        # just below it (mostly the float64 reference; then uint8 truncation)
        diff = np.abs(out.astype(int) - ref.astype(int))
        if name in ('brightness', 'saturate'):
            assert diff.max() <= 1 and diff.mean() < 0.15, (name, severity)
        else:
            assert diff.max() == 0, (name, severity)
