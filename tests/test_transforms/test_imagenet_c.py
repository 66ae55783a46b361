"""The 19 ImageNet-C corruptions as a whole: names, determinism, range, severity order, Corrupt."""
import cv2
import numpy as np
import pytest
import torch
from skimage import data

from mmseg_rass.transforms.imagenet_c import (BENCHMARK, CATEGORIES, CORRUPTIONS, Corrupt,
                                              corrupt_batch, corruption_fn, image_seed)

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def photos():
    """Two real RGB photos at 96×160 (small, but large enough for every corruption)."""
    return [cv2.resize(p, (160, 96), interpolation=cv2.INTER_AREA)
            for p in (data.astronaut(), data.coffee())]


def _batch(images):
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


def test_names_and_categories():
    assert len(CORRUPTIONS) == 19 and len(set(CORRUPTIONS)) == 19
    assert len(BENCHMARK) == 15 and set(CATEGORIES['holdout']) == {
        'speckle_noise', 'gaussian_blur', 'spatter', 'saturate'}
    for name in CORRUPTIONS:
        assert callable(corruption_fn(name))
    with pytest.raises(ValueError, match="unknown corruption 'gauss'.*gaussian_noise"):
        corruption_fn('gauss')


@pytest.mark.parametrize('name', CORRUPTIONS)
def test_deterministic_batch_independent_in_range(name, photos):
    x = _batch(photos)
    seeds = [image_seed(f'/data/img{i}.png', name, 3) for i in range(2)]
    out = corrupt_batch(x, name, 3, seeds)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, corrupt_batch(x, name, 3, seeds))  # same seeds → same bytes
    for i in range(2):  # an image's result does not depend on the rest of its batch
        assert torch.equal(out[i:i + 1], corrupt_batch(x[i:i + 1], name, 3, seeds[i:i + 1]))
    assert not torch.equal(out, x)


@pytest.mark.parametrize('name', [n for n in CORRUPTIONS
                                  if hasattr(corruption_fn(n), 'uint8_cpu')])
def test_uint8_input_gives_the_float_input_bytes(name, photos, monkeypatch):
    x = _batch(photos)  # a permuted HWC uint8 view, as the transform passes it
    out = corrupt_batch(x, name, 4, [3, 4])
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, corrupt_batch(x.float(), name, 4, [3, 4]))
    monkeypatch.setattr(corruption_fn(name), 'uint8_cpu', None)  # the torch path for uint8 too
    assert torch.equal(out, corrupt_batch(x, name, 4, [3, 4]))


# Not ordered by PSNR in the ImageNet-C definitions themselves (imagecorruptions 1.1.2 gives the
# same order): saturate's factors are 0.3, 0.1, 2, 5, 20 (severity 3 is the mildest); glass
# blur's severity 2 and 4 swap fewer pixels than 1 and 3; frost's and fog's middle severities
# (and snow's 2 and 3) differ by less than their random texture / fractal / flakes vary.
# dB tolerance against the reference
NOT_MONOTONE = dict(saturate=0.3, glass_blur=0.3, frost=1.5, fog=1.5, snow=1.5)


def _mean_psnrs(photos, fn):
    """Mean PSNR to the clean photos per severity, over the photos and four file names/seeds."""
    means = []
    for severity in range(1, 6):
        values = []
        for k, stem in enumerate(('a.png', 'b.png', 'c.png', 'd.png')):
            out = fn(severity, k, stem)
            values += [_psnr(o, p) for o, p in zip(out, photos)]
        means.append(float(np.mean(values)))
    return means


def _ours(photos, name):
    x = _batch(photos)

    def fn(severity, k, stem):
        seeds = [image_seed(f'{i}_{stem}', name, severity) for i in range(len(photos))]
        return corrupt_batch(x, name, severity, seeds).permute(0, 2, 3, 1).numpy()
    return fn


@pytest.mark.parametrize('name', CORRUPTIONS)
def test_severity_lowers_psnr(name, photos, tool_loader):
    """PSNR to the clean photo falls with severity; where the definition itself is not ordered,
    severity 5 is still below 1 and every severity matches the reference's mean PSNR."""
    means = _mean_psnrs(photos, _ours(photos, name))
    if name not in NOT_MONOTONE:
        assert all(a > b for a, b in zip(means, means[1:])), (name, means)
        return
    assert means[4] < means[0], (name, means)
    pytest.importorskip('imagecorruptions')
    corrupt = tool_loader('benchmark_corruptions').load_reference()

    def reference(severity, k, stem):
        np.random.seed(k)
        return [corrupt(p, corruption_name=name, severity=severity) for p in photos]
    expected = _mean_psnrs(photos, reference)
    np.testing.assert_allclose(means, expected, atol=NOT_MONOTONE[name])


def test_corrupt_transform_seeds_from_basename_and_keeps_bgr(photos):
    rgb = photos[0]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    t = Corrupt(corruption='gaussian_noise', severity=2)
    out = t(dict(img=bgr.copy(), img_path='/a/frame_01.png'))
    again = t(dict(img=bgr.copy(), img_path='/elsewhere/frame_01.png'))['img']
    other = t(dict(img=bgr.copy(), img_path='/a/frame_02.png'))['img']
    np.testing.assert_array_equal(out['img'], again)  # the seed is the basename
    assert not np.array_equal(out['img'], other)
    expected = corrupt_batch(_batch([rgb]), 'gaussian_noise', 2,
                             [image_seed('frame_01.png', 'gaussian_noise', 2)])
    np.testing.assert_array_equal(out['img'][..., ::-1], expected[0].permute(1, 2, 0).numpy())
    assert out['corruption'] == dict(name='gaussian_noise', severity=2)
    assert repr(t) == "Corrupt(corruption='gaussian_noise', severity=2)"


def test_corrupt_errors(photos):
    with pytest.raises(ValueError, match='unknown corruption'):
        Corrupt(corruption='blur', severity=1)
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match='severity .* out of range'):
            Corrupt(corruption='fog', severity=bad)
    t = Corrupt(corruption='fog', severity=1)
    with pytest.raises(KeyError, match='img_path'):
        t(dict(img=photos[0].copy()))
    with pytest.raises(ValueError, match=r'\(H, W, 3\).*after LoadImage'):
        t(dict(img=photos[0][..., 0].copy(), img_path='x.png'))
    with pytest.raises(ValueError, match='2 seeds for 1 images'):
        corrupt_batch(_batch(photos[:1]), 'fog', 1, [1, 2])


def test_every_corruption_on_the_device_matches_the_cpu_float_path(photos, device):
    """The draws come from CPU generators, so a uint8 batch on ``device`` (the CPU's uint8
    shortcuts included) gives the bytes of the float32 CPU path, up to float rounding."""
    x = _batch(photos)
    for name in CORRUPTIONS:
        ref = corrupt_batch(x.float(), name, 3, [0, 1])
        out = corrupt_batch(x.to(device), name, 3, [0, 1])
        assert out.device.type == device and out.dtype == torch.uint8, name
        diff = (out.cpu().int() - ref.int()).abs()
        assert diff.float().mean() < 0.1 and (diff > 2).float().mean() < 1e-3, (
            name, diff.float().mean().item(), diff.max().item())
