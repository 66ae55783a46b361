"""``RestorationMetric``: PSNR / SSIM, LPIPS and the Real-ISR metrics of restored images."""
import math
import os.path as osp

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS

from .iqa import IQA_METRICS, IQAScorer, missing_files


def _to_y(img):
    """RGB (3, H, W) in [0, 255] → ITU-R BT.601 luma (1, H, W) in [16, 235] (MATLAB rgb2ycbcr)."""
    weights = img.new_tensor([65.481, 128.553, 24.966])[:, None, None] / 255.
    return (img * weights).sum(0, keepdim=True) + 16.


def psnr(pred, target, max_val=255.):
    """PSNR (dB) of two images (C, H, W) in [0, max_val]; ``inf`` when identical."""
    mse = F.mse_loss(pred.double(), target.double())
    return float('inf') if mse == 0 else 10 * math.log10(max_val**2 / mse.item())


def ssim(pred, target, max_val=255.):
    """SSIM (Wang et al. 2004; 11×11 Gaussian window, σ 1.5, valid region), channel mean.

    Args:
        pred, target (Tensor): Images (C, H, W) in [0, max_val], H and W ≥ 11.
    """
    coords = torch.arange(11, dtype=torch.float64) - 5
    gauss = torch.exp(-coords**2 / (2 * 1.5**2))
    gauss = (gauss / gauss.sum()).expand(pred.shape[0], 1, 11)
    x, y = pred.double()[None], target.double()[None]
    c1, c2 = (0.01 * max_val)**2, (0.03 * max_val)**2

    def filt(img):  # the separable Gaussian window: rows, then columns
        img = F.conv2d(img, gauss[..., None, :], groups=pred.shape[0])
        return F.conv2d(img, gauss[..., :, None], groups=pred.shape[0])

    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x**2
    var_y = filt(y * y) - mu_y**2
    cov = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) *
                                                          (var_x + var_y + c2))
    return ssim_map.mean().item()


@METRICS.register_module()
class RestorationMetric(BaseMetric):
    """Quality of ``pred_img`` (uint8 RGB (3, H, W)) of each output, against ``gt_hq_img``.

    Metrics (``metrics``): ``PSNR`` and ``SSIM`` (this module; on the luma channel with
    ``test_y_channel`` and ``crop_border`` pixels cut from each side, as basicsr computes them),
    ``LPIPS`` (the ``lpips`` package, ``lpips_path``), and from pyiqa with weights in
    ``iqa_weights_dir`` (:mod:`mmseg_rass.evaluation.iqa`): full-reference ``DISTS`` and ``FID``
    (clean-FID features of the restored set against the HQ set), no-reference ``NIQE``,
    ``MUSIQ``, ``MANIQA``, ``CLIPIQA``. No-reference metrics alone need no ``gt_hq_img``
    (LQ-only sets such as RealLQ250); a full-reference metric on an output without it fails.
    A listed metric whose weights are missing fails when the metric is built, naming the file.

    With ``bicubic_baseline`` every metric is also computed for the bicubic upsampling of the
    output's ``lq_img`` to the ``pred_img`` size (the same operation SegSR applies to its input,
    :func:`~mmseg_rass.models.segmentors.segsr.upscale_bicubic`), reported as ``bicubic_<name>``.

    Args:
        metrics (Sequence[str]): Default ``('PSNR', 'SSIM')``.
        crop_border (int): Pixels cut from each border before PSNR/SSIM. Default 0.
        test_y_channel (bool): PSNR/SSIM on the luma channel (SR convention) instead of RGB.
        lpips_path (str, optional): torchvision's backbone checkpoint (``vgg16-397923af.pth``
            / ``alexnet-owt-7be5be79.pth``) or a full ``lpips.LPIPS`` state dict (see
            ``docs/scr.md``); adds ``LPIPS``.
        lpips_net (str): ``'vgg'`` or ``'alex'`` (pyiqa's and the Real-ISR papers' LPIPS).
            Default ``'vgg'``.
        iqa_weights_dir (str, optional): Local folder of the pyiqa metrics' weights
            (torch-hub layout, see :mod:`mmseg_rass.evaluation.iqa`).
        add_available (bool): Also compute every pyiqa metric whose files are all in
            ``iqa_weights_dir``; the others are named in one log line with their first
            missing file. Default False.
        bicubic_baseline (bool): Also measure the bicubic upsampling of ``lq_img``.
        collect_device, prefix: As ``BaseMetric``.
    """

    default_prefix = ''
    OWN = ('PSNR', 'SSIM', 'LPIPS')

    def __init__(self, metrics=('PSNR', 'SSIM'), crop_border=0, test_y_channel=False,
                 lpips_path=None, lpips_net='vgg', iqa_weights_dir=None, add_available=False,
                 bicubic_baseline=False, collect_device='cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        metrics = list(metrics) + (['LPIPS'] if lpips_path and 'LPIPS' not in metrics else [])
        unknown = [m for m in metrics if m not in self.OWN and m not in IQA_METRICS]
        if unknown:
            raise ValueError(f'RestorationMetric: unknown metric(s) {unknown}: use '
                             f'{list(self.OWN) + sorted(IQA_METRICS)}')
        if 'LPIPS' in metrics and not lpips_path:
            raise ValueError('RestorationMetric: LPIPS needs lpips_path (torchvision\'s '
                             'vgg16-397923af.pth / alexnet-owt-7be5be79.pth, see docs/scr.md)')
        if add_available:
            if iqa_weights_dir is None:
                raise ValueError('RestorationMetric: add_available needs iqa_weights_dir')
            absent = {}
            for name in (n for n in IQA_METRICS if n not in metrics):
                missing = missing_files(name, iqa_weights_dir)
                if missing:
                    absent[name] = missing[0][0]
                else:
                    metrics.append(name)
            if absent:
                print_log('RestorationMetric: not computed (weights absent): ' + '; '.join(
                    f'{k} ({osp.basename(v)})' for k, v in absent.items()), logger='current')
        self.metrics = metrics
        self.crop_border = crop_border
        self.test_y_channel = test_y_channel
        self.bicubic_baseline = bicubic_baseline
        self.lpips = None
        if 'LPIPS' in metrics:
            from ..models.restorers.lpips_net import load_lpips
            self.lpips = load_lpips(lpips_path, lpips_net)
        self.scorers = {m: IQAScorer(m, iqa_weights_dir) for m in metrics if m in IQA_METRICS}
        self.full_reference = [m for m in metrics if m in self.OWN or IQA_METRICS[m][1]]

    def _measure(self, pred, target):
        """Every metric of one image (uint8-valued float (3, H, W)); FID as its features."""
        result = {}
        for name, scorer in self.scorers.items():
            if name == 'FID':
                result['FID'] = scorer.features(pred.byte())
            else:
                result[name] = scorer.score(pred, target)
        if self.lpips is not None:
            with torch.no_grad():
                result['LPIPS'] = self.lpips(pred[None] / 127.5 - 1,
                                             target[None] / 127.5 - 1).item()
        if 'PSNR' in self.metrics or 'SSIM' in self.metrics:
            b = self.crop_border
            if b:
                pred, target = pred[:, b:-b, b:-b], target[:, b:-b, b:-b]
            if self.test_y_channel:
                pred, target = _to_y(pred), _to_y(target)
            if 'PSNR' in self.metrics:
                result['PSNR'] = psnr(pred, target)
            if 'SSIM' in self.metrics:
                result['SSIM'] = ssim(pred, target)
        return result

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            if 'pred_img' not in sample:
                raise KeyError('RestorationMetric needs outputs with pred_img: use it with a '
                               'restorer (SCRRestorer, SegSR)')
            pred = sample['pred_img']['data'].float().cpu()
            target = None
            if 'gt_hq_img' in sample:
                target = sample['gt_hq_img']['data'].float().cpu()
            elif self.full_reference:
                raise KeyError(f'RestorationMetric: {self.full_reference} need the HQ image '
                               f'(gt_hq_img), which {sample.get("img_path")} lacks: put '
                               'PackRestorationInputs after Degrade(keep_hq=True) or a paired '
                               'dataset in the test pipeline, or list only no-reference metrics')
            if target is not None and pred.shape != target.shape:
                raise ValueError(f'restored image {tuple(pred.shape)} and HQ image '
                                 f'{tuple(target.shape)} differ in size for '
                                 f'{sample.get("img_path")}')
            result = self._measure(pred, target)
            if 'FID' in self.scorers:
                result['FID_ref'] = self.scorers['FID'].features(target.byte())
            if self.bicubic_baseline:
                result.update({f'bicubic_{k}': v for k, v in
                               self._measure(self._bicubic(sample, pred.shape), target).items()})
            self.results.append(result)

    @staticmethod
    def _bicubic(sample, size):
        """The output's ``lq_img`` upsampled bicubically to ``size`` (3, H, W), uint8 values."""
        from ..models.segmentors.segsr import upscale_bicubic
        if 'lq_img' not in sample:
            raise KeyError('RestorationMetric(bicubic_baseline=True) needs outputs with lq_img '
                           '(SegSR, SCRRestorer)')
        lq = sample['lq_img']['data'].float().cpu()
        scale = size[-1] // lq.shape[-1]
        if tuple(size[-2:]) != (scale * lq.shape[-2], scale * lq.shape[-1]):
            raise ValueError(f'RestorationMetric: restored image {tuple(size[-2:])} is not an '
                             f'integer multiple of the LQ image {tuple(lq.shape[-2:])} of '
                             f'{sample.get("img_path")}')
        return upscale_bicubic(lq[None], scale)[0].clamp(0, 255).round()

    def compute_metrics(self, results):
        """Mean of each measure over the images; FID over the whole set."""
        metrics = {}
        for key in results[0]:
            if key.endswith('FID'):
                metrics[key] = IQAScorer.fid([r[key] for r in results],
                                             [r['FID_ref'] for r in results])
            elif key != 'FID_ref':
                metrics[key] = sum(r[key] for r in results) / len(results)
        return metrics
