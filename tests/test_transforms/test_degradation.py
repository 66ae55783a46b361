"""The ``Degrade`` transform: presets, families, noise/JPEG statistics, determinism, errors."""
import hashlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmseg.registry import TRANSFORMS

from mmseg_rass.transforms import Degrade
from mmseg_rass.transforms.degradation_ops import gaussian_noise, jpeg_cv2, poisson_noise
from mmseg_rass.transforms.degradation_pipeline import (FAMILIES, MIXED_TABLE, make_config,
                                                         sample_params)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _scene(h=64, w=96, seed=0):
    """A smooth image with sharp edges (gradients + rectangles), uint8 BGR."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w * 200 + 20, yy / h * 180 + 30, (xx + yy) / (h + w) * 150 + 50], -1)
    for _ in range(6):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y0:y0 + rng.integers(4, 20), x0:x0 + rng.integers(4, 30)] = rng.integers(0, 256, 3)
    return img.round().clip(0, 255).astype(np.uint8)


def _run(t, img, name='a/img_0001.png'):
    return t(dict(img=img.copy(), img_path=name, img_shape=img.shape[:2]))


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-10))


@pytest.mark.parametrize('preset,severity', [('rass_x1', None), ('realesrgan_x4', None),
                                             *[(f, 3) for f in FAMILIES]])
def test_output_size_range_dtype(preset, severity):
    img = _scene()
    t = TRANSFORMS.build(dict(type='Degrade', preset=preset, severity=severity, keep_hq=True))
    for i in range(2):
        r = _run(t, img, f'x/{i}.png')
        expected = (16, 24) if preset == 'realesrgan_x4' else (64, 96)
        assert r['img'].shape == (*expected, 3) and r['img'].dtype == np.uint8
        assert r['img_shape'] == expected
        assert r['hq_img'] is not None and np.array_equal(r['hq_img'], img)
        assert r['degradation']['preset'] == preset
    back = Degrade(preset='realesrgan_x4', resize_back=True)
    assert _run(back, img)['img'].shape == img.shape


def test_deterministic_bytes_same_name_same_bytes_other_name_differs():
    img = _scene(48, 64)
    a = _run(Degrade(deterministic=True), img, 'root/one/frankfurt_0001.png')['img']
    b = _run(Degrade(deterministic=True), img, 'elsewhere/frankfurt_0001.png')['img']
    c = _run(Degrade(deterministic=True), img, 'root/one/frankfurt_0002.png')['img']
    d = _run(Degrade(preset='mixed', severity=5, deterministic=True), img,
             'root/one/frankfurt_0001.png')['img']
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes() and a.tobytes() != d.tobytes()
    # training mode draws from numpy's global generator (seeded by mmengine)
    np.random.seed(3)
    e = _run(Degrade(), img)['img']
    np.random.seed(3)
    assert _run(Degrade(), img)['img'].tobytes() == e.tobytes()


def test_deterministic_bytes_identical_in_another_process_with_other_threads():
    img = _scene(48, 64)
    names = ['a/b/c_000.png', 'c_001.png']
    here = [hashlib.sha256(_run(Degrade(preset=p, severity=s, deterministic=True), img, n)
                           ['img'].tobytes()).hexdigest()
            for n in names for p, s in (('rass_x1', None), ('mixed', 4))]
    code = ('import hashlib, sys, numpy as np, torch\n'
            'torch.set_num_threads(2)\n'
            'from mmseg_rass.transforms.degradation import Degrade\n'
            'img = np.load(sys.argv[1])\n'
            'for n in ("a/b/c_000.png", "c_001.png"):\n'
            '    for p, s in (("rass_x1", None), ("mixed", 4)):\n'
            '        r = Degrade(preset=p, severity=s, deterministic=True)('
            'dict(img=img.copy(), img_path=n))\n'
            '        print(hashlib.sha256(r["img"].tobytes()).hexdigest())\n')
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        np.save(f'{d}/img.npy', img)
        out = subprocess.run([sys.executable, '-c', 'import mmseg_rass\n' + code, f'{d}/img.npy'],
                             capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == here


def test_gaussian_noise_std_matches_sigma_and_gray_is_shared():
    img = torch.full((1, 3, 200, 200), 0.5)
    g = torch.Generator().manual_seed(0)
    n = gaussian_noise(img, 12.0, False, g)
    assert n.std().item() == pytest.approx(12 / 255, rel=0.02)
    assert abs(n.mean().item()) < 1e-3
    ng = gaussian_noise(img, 12.0, True, g)
    assert torch.equal(ng[:, 0], ng[:, 1]) and torch.equal(ng[:, 0], ng[:, 2])
    # family 'noise': output − input has the family's sigma (mid-gray image, no clipping)
    sigma = make_config('noise', 2)['noise_range'][0]
    flat = np.full((128, 128, 3), 128, np.uint8)
    out = _run(Degrade(preset='noise', severity=2, deterministic=True), flat)['img']
    assert (out.astype(float) - 128).std() == pytest.approx(sigma, rel=0.05)


def test_poisson_noise_variance_follows_signal():
    ramp = torch.linspace(0, 1, 256).repeat(3, 256, 1)[None]  # 256 distinct levels → vals 256
    g = torch.Generator().manual_seed(1)
    scale = 2.0
    noise = torch.stack([poisson_noise(ramp, scale, False, g) for _ in range(20)])
    x = ramp.expand_as(noise)
    mask = x > 0.1
    ratio = (noise[mask] ** 2).mean() / (x[mask] / 256 * scale ** 2).mean()
    assert ratio.item() == pytest.approx(1.0, rel=0.05)
    gray = poisson_noise(ramp, scale, True, g)
    assert torch.equal(gray[:, 0], gray[:, 2])


def test_jpeg_is_the_real_codec_and_quality_orders_error():
    img = _scene(64, 64)
    errs = []
    for q in (95, 60, 30):
        out = jpeg_cv2(torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255., q)
        ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, q])
        ref = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        got = (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(got, ref)
        errs.append(np.abs(got.astype(int) - img).mean())
    assert errs[0] < errs[1] < errs[2]
    # family 'jpeg' is exactly one codec round trip at the table's quality
    q = make_config('jpeg', 4)['jpeg_range'][0]
    out = _run(Degrade(preset='jpeg', severity=4), img)['img']
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, q])
    assert np.array_equal(out, cv2.imdecode(buf, cv2.IMREAD_COLOR))


def test_blur_family_is_a_gaussian_blur():
    img = _scene(64, 96)
    sigma = make_config('blur', 3)['blur_sigma'][0]
    out = _run(Degrade(preset='blur', severity=3), img)['img']
    ref = cv2.GaussianBlur(img.astype(np.float64), (21, 21), sigma,
                           borderType=cv2.BORDER_REFLECT_101)
    assert np.abs(out.astype(float) - ref.round()).max() <= 1


def test_families_get_stronger_with_severity():
    img = _scene(64, 96)
    for family in ('blur', 'noise', 'jpeg', 'downsample'):
        psnr = [_psnr(_run(Degrade(preset=family, severity=s, deterministic=True), img)['img'],
                      img) for s in range(1, 6)]
        assert all(a > b for a, b in zip(psnr, psnr[1:])), (family, psnr)
    for key, rows in MIXED_TABLE.items():  # mixed: every range widens towards the strong end
        lows, highs = zip(*rows)
        if key.startswith(('resize', 'jpeg')):
            assert list(lows) == sorted(lows, reverse=True) and len(set(highs)) == 1, key
        else:
            assert list(highs) == sorted(highs) and len(set(lows)) == 1, key
    assert make_config('mixed', 5) == make_config('rass_x1')


def test_sampling_follows_configured_probabilities():
    cfg = make_config('rass_x1')
    rng = np.random.default_rng(0)
    ps = [sample_params(cfg, rng) for _ in range(2000)]
    sinc = np.mean([p['kernel1']['type'] == 'sinc' for p in ps])
    final = np.mean([p['final_kernel']['type'] == 'sinc' for p in ps])
    blur2 = np.mean([p['kernel2']['type'] != 'pulse' for p in ps])
    down = np.mean([p['resize1'][0] < 1 for p in ps])
    gauss = np.mean([p['noise1']['kind'] == 'gaussian' for p in ps])
    assert sinc == pytest.approx(0.1, abs=0.02) and final == pytest.approx(0.8, abs=0.03)
    assert blur2 == pytest.approx(0.8, abs=0.03) and down == pytest.approx(0.7, abs=0.03)
    assert gauss == pytest.approx(0.5, abs=0.03)
    assert all(30 <= p['jpeg1'] <= 95 and 0.15 <= p['resize1'][0] <= 1.5 for p in ps)


@pytest.mark.parametrize('kwargs,key', [
    (dict(blur_sigma=(-1.0, 2.0)), 'blur_sigma'),
    (dict(noise_range=(30, 1)), 'noise_range'),
    (dict(preset='rass_x2'), 'preset'),
    (dict(preset='blur'), 'severity'),
    (dict(preset='blur', severity=6), 'severity'),
    (dict(severity=2), 'severity'),
    (dict(jpeg_range=(30, 120)), 'jpeg_range'),
    (dict(kernel_range=(8, 21)), 'kernel_range'),
    (dict(kernel_prob=[0.5, 0.5]), 'kernel_prob'),
    (dict(sinc_prob=1.5), 'sinc_prob'),
    (dict(resize_modes=['nearest']), 'resize_modes'),
    (dict(nosie_range=(1, 2)), 'nosie_range'),
])
def test_bad_parameters_raise_one_clear_error(kwargs, key):
    with pytest.raises(ValueError, match=rf'Degrade: {key}='):
        TRANSFORMS.build(dict(type='Degrade', **kwargs))


def test_bad_input_image_and_missing_path():
    with pytest.raises(ValueError, match='right after LoadImage'):
        Degrade()(dict(img=np.zeros((8, 8), np.uint8), img_path='a.png'))
    with pytest.raises(KeyError, match='img_path'):
        Degrade(deterministic=True)(dict(img=np.zeros((8, 8, 3), np.uint8)))
