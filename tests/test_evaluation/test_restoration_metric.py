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


def _photo_pair(name):
    """A real photo (skimage, its central 256x256) as HQ and its deterministic Real-ESRGAN x4
    degradation, bicubically upsampled back, as LQ; both uint8 RGB (H, W, 3)."""
    import numpy as np
    import skimage.data

    from mmseg_rass.transforms import Degrade
    hq = getattr(skimage.data, name)()
    top, left = (hq.shape[0] - 256) // 2, (hq.shape[1] - 256) // 2
    hq = np.ascontiguousarray(hq[top:top + 256, left:left + 256])
    out = Degrade(preset='realesrgan_x4', deterministic=True, resize_back=True).transform(
        dict(img=hq[..., ::-1].copy(), img_path=f'{name}.png'))
    return hq, np.ascontiguousarray(out['img'][..., ::-1])


def _chw(img):
    return torch.from_numpy(img.copy()).permute(2, 0, 1)


@pytest.mark.parametrize('test_y_channel,crop_border', [(True, 4), (False, 0)])
def test_psnr_ssim_agree_with_basicsr_on_real_photos(basicsr_metrics, test_y_channel,
                                                     crop_border):
    metric = METRICS.build(dict(type='RestorationMetric', crop_border=crop_border,
                                test_y_channel=test_y_channel))
    for name in ('astronaut', 'coffee'):
        hq, lq = _photo_pair(name)
        metric.process({}, [_sample(_chw(lq), _chw(hq))])
        ours = metric.results[-1]
        # basicsr takes BGR (H, W, C)
        ref_psnr = basicsr_metrics.calculate_psnr(lq[..., ::-1], hq[..., ::-1], crop_border,
                                                  test_y_channel=test_y_channel)
        ref_ssim = basicsr_metrics.calculate_ssim(lq[..., ::-1], hq[..., ::-1], crop_border,
                                                  test_y_channel=test_y_channel)
        assert 15 < ref_psnr < 35  # a real degradation, not a trivial pair
        assert ours['PSNR'] == pytest.approx(ref_psnr, abs=0.01)
        assert ours['SSIM'] == pytest.approx(ref_ssim, abs=1e-4)


def _niqe_weights(basicsr_metrics, folder):
    """basicsr's copy of the NIQE release's pristine-model parameters, as pyiqa's .mat file."""
    import numpy as np
    import scipy.io
    params = np.load(basicsr_metrics.niqe_params)
    (folder / 'pyiqa').mkdir(parents=True)
    scipy.io.savemat(folder / 'pyiqa' / 'niqe_modelparameters.mat',
                     dict(mu_prisparam=params['mu_pris_param'],
                          cov_prisparam=params['cov_pris_param']))
    return str(folder)


def test_niqe_agrees_with_basicsr_matlab_port(basicsr_metrics, tmp_path):
    # pyiqa's NIQE (luma of YIQ = MATLAB's rgb2gray) vs basicsr's port of the MATLAB release on
    # the gray image, both with the release's parameters: within 0.01 on real photos
    metric = METRICS.build(dict(type='RestorationMetric', metrics=['NIQE'],
                                iqa_weights_dir=_niqe_weights(basicsr_metrics, tmp_path)))
    for name in ('astronaut', 'chelsea'):
        hq, lq = _photo_pair(name)
        for img in (hq, lq):
            metric.process({}, [{'pred_img': {'data': _chw(img)}, 'img_path': name}])  # no HQ
            ref = basicsr_metrics.calculate_niqe(img[..., ::-1], 0, convert_to='gray')
            assert metric.results[-1]['NIQE'] == pytest.approx(float(ref), abs=0.01)
    # NIQE sees the degradation: the LQ images score worse (higher) than the photos
    assert metric.results[1]['NIQE'] > metric.results[0]['NIQE']


def test_bicubic_baseline_and_no_reference_sets():
    from mmseg_rass.models.segmentors.segsr import upscale_bicubic
    gen = torch.Generator().manual_seed(0)
    lq = torch.randint(0, 256, (3, 8, 12), generator=gen, dtype=torch.uint8)
    bicubic = upscale_bicubic(lq.float()[None], 4)[0].clamp(0, 255).round()
    hq = (bicubic + torch.randint(-3, 4, bicubic.shape, generator=gen)).clamp(0, 255).byte()
    metric = METRICS.build(dict(type='RestorationMetric', bicubic_baseline=True))
    sample = dict(_sample(bicubic.byte(), hq), lq_img={'data': lq})
    metric.process({}, [sample])
    result = metric.compute_metrics(metric.results)
    assert set(result) == {'PSNR', 'SSIM', 'bicubic_PSNR', 'bicubic_SSIM'}
    assert result['bicubic_PSNR'] == result['PSNR'] and result['bicubic_SSIM'] == result['SSIM']
    with pytest.raises(ValueError, match='integer multiple'):
        metric.process({}, [dict(sample, lq_img={'data': lq[:, :7]})])
    with pytest.raises(KeyError, match='lq_img'):
        metric.process({}, [_sample(hq, hq)])
    # a label-less, HQ-less set: full-reference metrics fail naming what is missing
    with pytest.raises(KeyError, match=r"\['PSNR', 'SSIM'\] need the HQ image"):
        metric.process({}, [{'pred_img': {'data': hq}, 'img_path': 'real.png'}])


def test_missing_metric_weights_fail_with_one_line_naming_the_file(tmp_path):
    from mmseg_rass.evaluation.iqa import IQA_METRICS
    for name, (_, _, files) in IQA_METRICS.items():
        with pytest.raises(FileNotFoundError) as error:
            METRICS.build(dict(type='RestorationMetric', metrics=[name],
                               iqa_weights_dir=str(tmp_path)))
        message = str(error.value)
        assert '\n' not in message and str(tmp_path / files[0][0]) in message
        assert files[0][1] in message and message.startswith(name)
    with pytest.raises(FileNotFoundError, match='<iqa_weights_dir>/pyiqa/niqe'):
        METRICS.build(dict(type='RestorationMetric', metrics=['NIQE']))
    with pytest.raises(ValueError, match="unknown metric.*'PI'"):
        METRICS.build(dict(type='RestorationMetric', metrics=['PSNR', 'PI']))


def test_add_available_computes_present_metrics_and_names_the_others(basicsr_metrics, tmp_path):
    import mmseg_rass.evaluation.restoration_metric as module
    messages = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, 'print_log', lambda msg, logger: messages.append(msg))
        metric = METRICS.build(dict(type='RestorationMetric', add_available=True,
                                    iqa_weights_dir=_niqe_weights(basicsr_metrics, tmp_path)))
    assert metric.metrics == ['PSNR', 'SSIM', 'NIQE']
    line = [m for m in messages if 'not computed' in m]
    assert len(line) == 1 and 'DISTS (vgg16-397923af.pth)' in line[0] and 'NIQE' not in line[0]


@pytest.fixture(scope='module')
def musiq_weights(tmp_path_factory):
    """A folder with a randomly initialised MUSIQ checkpoint under pyiqa's file name."""
    from pyiqa.archs.musiq_arch import MUSIQ
    folder = tmp_path_factory.mktemp('iqa_weights')
    (folder / 'pyiqa').mkdir()
    torch.manual_seed(0)
    state = MUSIQ(pretrained=False, num_class=1).state_dict()
    torch.save(state, folder / 'pyiqa' / 'musiq_koniq_ckpt-e95806b9.pth')
    return folder, state


def test_network_metric_loads_local_weights_offline_and_safely(musiq_weights, tmp_path):
    from mmseg_rass.compat import UntrustedCheckpointError
    from mmseg_rass.evaluation.iqa import build_iqa_network
    folder, state = musiq_weights
    net = build_iqa_network('MUSIQ', str(folder))
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    metric = METRICS.build(dict(type='RestorationMetric', metrics=['MUSIQ'],
                                iqa_weights_dir=str(folder)))
    img = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    metric.process({}, [{'pred_img': {'data': img}}])
    assert math.isfinite(metric.results[0]['MUSIQ'])
    # a weights file that needs full unpickling is refused unless the user trusts it
    (tmp_path / 'pyiqa').mkdir()
    torch.save(dict(state, extra=math.inf.__class__), tmp_path / 'pyiqa' /
               'musiq_koniq_ckpt-e95806b9.pth')
    with pytest.raises(UntrustedCheckpointError, match='musiq_koniq_ckpt'):
        build_iqa_network('MUSIQ', str(tmp_path))


def test_visualizer_enlarges_the_smaller_lq_image_of_super_resolution(tmp_path):
    import mmcv
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmseg_rass.evaluation import RestorationVisualizer
    vis = RestorationVisualizer(name='test_sr_vis', save_dir=str(tmp_path))
    gen = torch.Generator().manual_seed(0)
    lq = torch.randint(0, 256, (3, 4, 6), generator=gen, dtype=torch.uint8)
    sample = SegDataSample(pred_img=PixelData(data=torch.zeros(3, 16, 24, dtype=torch.uint8)),
                           lq_img=PixelData(data=lq),
                           gt_hq_img=PixelData(data=torch.full((3, 16, 24), 9, dtype=torch.uint8)))
    out = tmp_path / 'row.png'
    vis.add_datasample('x', None, sample, out_file=str(out))
    row = mmcv.imread(str(out))[..., ::-1]  # RGB
    assert row.shape == (16, 72, 3)  # LQ (x4, nearest) | SR | HQ
    expected = lq.repeat_interleave(4, 1).repeat_interleave(4, 2).permute(1, 2, 0).numpy()
    assert (row[:, :24] == expected).all() and (row[:, 48:] == 9).all()
