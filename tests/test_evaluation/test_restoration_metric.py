"""RestorationMetric: PSNR / SSIM against hand-computed values, LPIPS from a local file."""
import math

import pytest
import torch
from mmseg.registry import METRICS

from mmseg_rass.evaluation.restoration_metric import psnr, ssim


def _sample(pred, target):
    return {'pred_img': {'data': pred}, 'gt_hq_img': {'data': target}, 'img_path': 'x.png'}


def test_psnr_ssim_hand_computed():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(10, 240, (3, 24, 32), generator=gen, dtype=torch.uint8)
    off_by_one = target + 1
    assert psnr(off_by_one, target) == pytest.approx(20 * math.log10(255))  # MSE = 1
    assert psnr(target, target) == math.inf
    assert ssim(target, target) == pytest.approx(1.0)
    # a constant shift c keeps variances/covariance: SSIM = (2μx μy + C1) / (μx² + μy² + C1)
    flat = torch.full((1, 16, 16), 100, dtype=torch.uint8)
    c1 = (0.01 * 255)**2
    assert ssim(flat + 10, flat) == pytest.approx((2 * 110 * 100 + c1) / (110**2 + 100**2 + c1))
    noisy = (target.float() + torch.randn(target.shape, generator=gen) * 20).clamp(0, 255)
    assert 0 < ssim(noisy, target.float()) < ssim((target.float() + noisy) / 2, target.float()) < 1


def test_metric_means_over_images_and_options(tmp_path):
    target = torch.full((3, 16, 16), 100, dtype=torch.uint8)
    metric = METRICS.build(dict(type='RestorationMetric'))
    metric.process({}, [_sample(target + 1, target), _sample(target + 2, target)])
    result = metric.compute_metrics(metric.results)
    expected = (20 * math.log10(255) + 20 * math.log10(255 / 2)) / 2
    assert result['PSNR'] == pytest.approx(expected) and set(result) == {'PSNR', 'SSIM'}
    # border crop and Y channel
    pred = target.clone()
    pred[:, 0] = 0  # damage only the first row
    metric = METRICS.build(dict(type='RestorationMetric', crop_border=1, test_y_channel=True))
    metric.process({}, [_sample(pred, target)])
    assert metric.results[0]['PSNR'] == math.inf
    with pytest.raises(KeyError, match='pred_img'):
        metric.process({}, [{'gt_hq_img': {'data': target}}])


def test_lpips_from_local_weights_only(tmp_path):
    import lpips
    path = tmp_path / 'lpips_alex.pth'
    torch.manual_seed(0)
    torch.save(lpips.LPIPS(net='alex', pretrained=False, pnet_rand=True, verbose=False).state_dict(),
               path)
    metric = METRICS.build(dict(type='RestorationMetric', lpips_path=str(path), lpips_net='alex'))
    target = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    metric.process({}, [_sample(target, target)])
    assert metric.results[0]['LPIPS'] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(FileNotFoundError, match='lpips_path'):
        METRICS.build(dict(type='RestorationMetric', lpips_path=str(tmp_path / 'missing.pth')))
