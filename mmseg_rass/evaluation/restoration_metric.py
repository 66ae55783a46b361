"""``RestorationMetric``: PSNR / SSIM (and LPIPS given local weights) of restored images."""
import math

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS


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
    gauss = gauss / gauss.sum()
    window = (gauss[:, None] * gauss[None, :]).expand(pred.shape[0], 1, 11, 11)
    x, y = pred.double()[None], target.double()[None]
    c1, c2 = (0.01 * max_val)**2, (0.03 * max_val)**2

    def filt(img):
        return F.conv2d(img, window, groups=pred.shape[0])

    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x**2
    var_y = filt(y * y) - mu_y**2
    cov = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) *
                                                          (var_x + var_y + c2))
    return ssim_map.mean().item()


@METRICS.register_module()
class RestorationMetric(BaseMetric):
    """PSNR and SSIM between ``pred_img`` and ``gt_hq_img`` (uint8 RGB (3, H, W)) of each output.

    Args:
        crop_border (int): Pixels cut from each border before measuring. Default 0.
        test_y_channel (bool): Measure on the luma channel (SR convention) instead of RGB.
        lpips_path (str, optional): torchvision's backbone checkpoint (``vgg16-397923af.pth``)
            or a full ``lpips.LPIPS`` state dict (see ``docs/scr.md``); adds ``LPIPS`` if given.
        lpips_net (str): ``'vgg'`` or ``'alex'``. Default ``'vgg'``.
        collect_device, prefix: As ``BaseMetric``.
    """

    default_prefix = ''

    def __init__(self, crop_border=0, test_y_channel=False, lpips_path=None, lpips_net='vgg',
                 collect_device='cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.crop_border = crop_border
        self.test_y_channel = test_y_channel
        self.lpips = None
        if lpips_path:
            from ..models.restorers.lpips_net import load_lpips
            self.lpips = load_lpips(lpips_path, lpips_net)

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            if 'pred_img' not in sample or 'gt_hq_img' not in sample:
                raise KeyError('RestorationMetric needs outputs with pred_img and gt_hq_img: use it '
                               'with a restorer (SCRRestorer) and PackRestorationInputs in the '
                               'test pipeline')
            pred = sample['pred_img']['data'].float().cpu()
            target = sample['gt_hq_img']['data'].float().cpu()
            if pred.shape != target.shape:
                raise ValueError(f'restored image {tuple(pred.shape)} and HQ image '
                                 f'{tuple(target.shape)} differ in size for '
                                 f'{sample.get("img_path")}')
            result = {}
            if self.lpips is not None:
                with torch.no_grad():
                    result['LPIPS'] = self.lpips(pred[None] / 127.5 - 1,
                                                 target[None] / 127.5 - 1).item()
            b = self.crop_border
            if b:
                pred, target = pred[:, b:-b, b:-b], target[:, b:-b, b:-b]
            if self.test_y_channel:
                pred, target = _to_y(pred), _to_y(target)
            result['PSNR'] = psnr(pred, target)
            result['SSIM'] = ssim(pred, target)
            self.results.append(result)

    def compute_metrics(self, results):
        """Mean of each measure over the images."""
        return {k: sum(r[k] for r in results) / len(results) for k in results[0]}
