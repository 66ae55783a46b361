"""The batched degradation (data preprocessor) against the per-image ``Degrade`` transform."""
import numpy as np
import pytest
import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_rass.transforms import Degrade, degradation_pipeline
from mmseg_rass.transforms.degradation_pipeline import degrade_batch, make_config, sample_params


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _images(n, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    imgs = []
    for _ in range(n):
        base = np.stack([xx * rng.uniform(2, 5), yy * rng.uniform(2, 6), (xx + yy) * 2.0], -1)
        base[rng.integers(0, h // 2):, rng.integers(0, w // 2):] += rng.uniform(-80, 80, 3)
        imgs.append(np.clip(base + 20, 0, 255).astype(np.uint8))
    return imgs


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-10))


def _sample(name, shape):
    return SegDataSample(metainfo=dict(img_path=f'data/x/{name}', img_shape=shape,
                                       ori_shape=shape))


def test_batched_equals_per_image_for_the_same_parameters():
    cfg = make_config('rass_x1')
    imgs = _images(6)
    rng = np.random.default_rng(1)
    params = [sample_params(cfg, rng) for _ in imgs]
    batch = torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i in imgs]).double() / 255.
    together = degrade_batch(batch, params, cfg)
    alone = torch.cat([degrade_batch(batch[i:i + 1], params[i:i + 1], cfg) for i in range(6)])
    assert torch.equal(together, alone)


def test_float32_image_does_not_depend_on_its_batch_or_chunk(monkeypatch):
    cfg = make_config('rass_x1')
    imgs = _images(5, seed=4)
    rng = np.random.default_rng(5)
    params = [sample_params(cfg, rng) for _ in imgs]
    assert len({p['kernel1']['size'] for p in params}) > 1  # several FFT groups per chunk
    batch = torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i in imgs])
    together = degrade_batch(batch, params, cfg)
    assert together.dtype == torch.uint8 and together.shape == batch.shape
    order = [4, 2, 0, 1, 3]
    shuffled = degrade_batch(batch[order], [params[i] for i in order], cfg)
    monkeypatch.setattr(degradation_pipeline, 'CPU_CHUNK_VALUES', 2 * batch[0].numel())
    chunked = degrade_batch(batch, params, cfg)
    alone = torch.cat([degrade_batch(batch[i:i + 1], params[i:i + 1], cfg) for i in range(5)])
    assert torch.equal(together, alone) and torch.equal(chunked, alone)
    assert torch.equal(shuffled, alone[order])


def test_batched_and_per_image_agree_in_distribution():
    n = 96
    imgs = _images(n, seed=2)
    pre = MODELS.build(dict(type='DegradeSegDataPreProcessor', degradation=dict(preset='rass_x1'),
                            size=(32, 48)))
    t = Degrade(preset='rass_x1')
    np.random.seed(0)
    per_image = [_psnr(t(dict(img=i.copy(), img_path='a.png'))['img'], i) for i in imgs]
    inputs = [torch.from_numpy(i).permute(2, 0, 1).contiguous() for i in imgs]
    samples = [_sample(f'{k}.png', (32, 48)) for k in range(n)]
    batched = []
    for s in range(0, n, 8):
        out = pre(dict(inputs=inputs[s:s + 8], data_samples=samples[s:s + 8]), training=True)
        assert out['inputs'].shape == (8, 3, 32, 48) and out['inputs'].dtype == torch.float32
        batched += [_psnr(o.permute(1, 2, 0).round().byte().numpy(), i)
                    for o, i in zip(out['inputs'], imgs[s:s + 8])]
    # per-image PSNR has std ~3 dB: means over 96 samples agree within ~3.5 standard errors
    assert abs(np.mean(per_image) - np.mean(batched)) < 1.5, (np.mean(per_image),
                                                              np.mean(batched))
    assert abs(np.std(per_image) - np.std(batched)) < 2.0


def test_test_mode_clean_by_default_and_deterministic_when_asked():
    imgs = _images(3, seed=3)
    inputs = [torch.from_numpy(i).permute(2, 0, 1).contiguous() for i in imgs]
    samples = [_sample(f'frankfurt_{k}.png', (32, 48)) for k in range(3)]
    clean = MODELS.build(dict(type='DegradeSegDataPreProcessor', bgr_to_rgb=False))
    out = clean(dict(inputs=inputs, data_samples=samples), training=False)['inputs']
    assert torch.equal(out, torch.stack(inputs).float())
    det = MODELS.build(dict(type='DegradeSegDataPreProcessor', degrade_test=True,
                            degradation=dict(preset='mixed', severity=3)))
    a = det(dict(inputs=inputs, data_samples=samples), training=False)['inputs']
    b = det(dict(inputs=inputs, data_samples=samples), training=False)['inputs']
    assert torch.equal(a, b)
    t = Degrade(preset='mixed', severity=3, deterministic=True)
    ref = t(dict(img=imgs[1].copy(), img_path='elsewhere/frankfurt_1.png'))['img']
    assert np.array_equal(a[1].permute(1, 2, 0).byte().numpy(), ref)


def test_size_changing_preset_is_rejected():
    with pytest.raises(ValueError, match='resize_back=True'):
        MODELS.build(dict(type='DegradeSegDataPreProcessor',
                          degradation=dict(preset='realesrgan_x4')))
    with pytest.raises(ValueError, match='Degrade: noise_range='):
        MODELS.build(dict(type='DegradeSegDataPreProcessor',
                          degradation=dict(noise_range=(5, 1))))


def test_batch_degrades_on_its_device(device):
    """Every stage runs on the batch's device (grouped convs, nvJPEG on CUDA): uint8 results
    stay there; without noise and JPEG the float32 result on the device is the CPU float64 one
    within a grey level, and the device's JPEG round trip is OpenCV's within rounding."""
    from mmseg_rass.transforms.degradation_ops import jpeg, jpeg_cv2
    inputs = [torch.from_numpy(i).permute(2, 0, 1).contiguous().to(device) for i in _images(4)]
    np.random.seed(0)
    pre = MODELS.build(dict(type='DegradeSegDataPreProcessor', degradation=dict(preset='rass_x1')))
    out = pre.degrade(inputs + [inputs[0][:, :16]])  # two sizes: two groups
    assert [(o.device.type, o.dtype, tuple(o.shape)) for o in out] == [
        (device, torch.uint8, (3, 32, 48))] * 4 + [(device, torch.uint8, (3, 16, 48))]
    cfg = make_config('rass_x1', noise_prob=0., noise_prob2=0., jpeg_prob=0., jpeg_prob2=0.)
    params = [sample_params(cfg, np.random.default_rng(k)) for k in range(4)]
    batch = torch.stack(inputs)
    diff = (degrade_batch(batch, params, cfg).cpu().int() -
            degrade_batch(batch.cpu(), params, cfg, torch.float64).int()).abs()
    assert diff.max() <= 1 and diff.float().mean() < 0.05
    imgs = [batch[i:i + 1].float() / 255 for i in range(2)]
    for img, dec in zip(imgs, jpeg(imgs, [40, 80])):
        assert dec.device.type == device and dec.shape == img.shape
        ref = jpeg_cv2(img.cpu(), 40 if img is imgs[0] else 80)
        assert (dec.cpu() - ref).abs().mean() * 255 < 1.0
