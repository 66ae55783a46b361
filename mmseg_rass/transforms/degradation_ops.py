"""Resize, noise and JPEG operations of the Real-ESRGAN degradation (torch, any device).

Images are float tensors in [0, 1] of shape (1, 3, H, W) or (B, 3, H, W) in **BGR** order (as
``LoadImage`` and ``PackSegInputs`` give them).
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

RESIZE_MODES = ('area', 'bilinear', 'bicubic')
# ITU-R BT.601 luma weights (torchvision's rgb_to_grayscale) in B, G, R order
_GRAY_BGR = (0.114, 0.587, 0.299)


def resize(img, mode, size=None, scale_factor=None):
    """``F.interpolate`` as Real-ESRGAN calls it (no anti-aliasing, ``align_corners=False``).

    Args:
        img (Tensor): (B, C, H, W) images.
        mode (str): one of :data:`RESIZE_MODES`.
        size (tuple[int, int] | None): output (h, w); a size equal to the input's is a no-op.
        scale_factor (float | None): used when ``size`` is None (``area`` mode: output side
            ``floor(side * scale_factor)``).

    Returns:
        Tensor: (B, C, h, w) resized images.
    """
    if size is not None:
        size = (max(int(size[0]), 1), max(int(size[1]), 1))
        if tuple(img.shape[-2:]) == size:
            return img
        return F.interpolate(img, size=size, mode=mode)
    if scale_factor == 1:
        return img
    h, w = img.shape[-2:]
    if h * scale_factor < 1 or w * scale_factor < 1:
        return F.interpolate(img, size=(max(int(h * scale_factor), 1),
                                        max(int(w * scale_factor), 1)), mode=mode)
    return F.interpolate(img, scale_factor=scale_factor, mode=mode)


def to_gray(img):
    """(B, 3, H, W) BGR → (B, 1, H, W) luma."""
    w = img.new_tensor(_GRAY_BGR).view(1, 3, 1, 1)
    return (img * w).sum(dim=1, keepdim=True)


def gaussian_noise(img, sigma, gray, generator=None):
    """Additive Gaussian noise (basicsr's ``generate_gaussian_noise_pt``), not yet added.

    Args:
        img (Tensor): (1, C, H, W) image in [0, 1].
        sigma (float): standard deviation in 8-bit levels (divided by 255).
        gray (bool): the same noise on every channel.
        generator (torch.Generator | None): random source on ``img``'s device.

    Returns:
        Tensor: (1, C, H, W) noise.
    """
    b, c, h, w = img.shape
    shape = (b, 1, h, w) if gray else img.shape
    noise = torch.randn(shape, generator=generator, device=img.device, dtype=img.dtype)
    return (noise * (sigma / 255.)).expand_as(img)


def _poisson_levels(img8):
    """2^ceil(log2(number of distinct 8-bit values)) of a (1, C, H, W) uint8-valued image."""
    counts = torch.bincount(img8.flatten().to(torch.uint8), minlength=256)
    distinct = int((counts > 0).sum())
    return float(2 ** np.ceil(np.log2(max(distinct, 1))))


def poisson_noise(img, scale, gray, generator=None):
    """Signal-dependent Poisson noise (basicsr's ``generate_poisson_noise_pt``), not yet added.

    The image is quantised to 8 bits, its number of distinct values ``n`` rounded up to a
    power of two gives the photon count ``vals``, and the noise is ``(Poisson(x·vals)/vals −
    x) · scale``; ``gray`` draws it once from the luma.

    Args:
        img (Tensor): (1, C, H, W) image in [0, 1], BGR.
        scale (float): noise scale.
        gray (bool): gray (luma) noise on every channel.
        generator (torch.Generator | None): random source on ``img``'s device.

    Returns:
        Tensor: (1, C, H, W) noise.
    """
    src = to_gray(img) if gray else img
    src8 = torch.clamp((src * 255.).round(), 0, 255)
    src = src8 / 255.
    vals = _poisson_levels(src8)
    out = torch.poisson(src * vals, generator=generator) / vals
    return ((out - src) * scale).expand_as(img)


def jpeg_cv2(img, quality):
    """Real JPEG round trip through OpenCV (libjpeg), one image.

    Args:
        img (Tensor): (1, 3, H, W) BGR image in [0, 1] (clamped and rounded to 8 bits).
        quality (int): JPEG quality 1–100.

    Returns:
        Tensor: (1, 3, H, W) decoded image in [0, 1], same device and dtype.
    """
    _, c, h, w = img.shape
    arr = torch.empty((h, w, c), dtype=torch.uint8)
    arr.copy_((img[0].clamp(0, 1) * 255.).round_().permute(1, 2, 0))  # one HWC pass
    ok, buf = cv2.imencode('.jpg', arr.numpy(), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError(f'OpenCV failed to encode a {tuple(arr.shape)} image as JPEG')
    dec = torch.from_numpy(cv2.imdecode(buf, cv2.IMREAD_COLOR)).permute(2, 0, 1)
    out = torch.empty((1, c, h, w), dtype=img.dtype)
    out[0].copy_(dec)  # contiguous CHW
    return out.div_(255.).to(img.device)


def jpeg_torchvision(imgs, qualities):
    """Real JPEG round trips through ``torchvision.io`` (nvJPEG on CUDA tensors).

    Args:
        imgs (list[Tensor]): (1, 3, H, W) BGR images in [0, 1], on a CUDA device.
        qualities (list[int]): JPEG quality per image.

    Returns:
        list[Tensor]: (1, 3, H, W) decoded images in [0, 1].
    """
    from torchvision.io import decode_jpeg, encode_jpeg
    out = [None] * len(imgs)
    for q in sorted(set(qualities)):
        idx = [i for i, qi in enumerate(qualities) if qi == q]
        batch = [(imgs[i][0].clamp(0, 1) * 255.).round().to(torch.uint8).flip(0).contiguous()
                 for i in idx]
        dec = decode_jpeg(encode_jpeg(batch, quality=int(q)), device=imgs[idx[0]].device)
        for i, d in zip(idx, dec):
            out[i] = d.flip(0)[None].to(imgs[i].dtype) / 255.
    return out


def jpeg(imgs, qualities):
    """JPEG round trip of a list of images: torchvision/nvJPEG on CUDA, OpenCV elsewhere.

    Args:
        imgs (list[Tensor]): (1, 3, H, W) BGR images in [0, 1].
        qualities (list[int]): JPEG quality per image.

    Returns:
        list[Tensor]: decoded images, same shapes.
    """
    if imgs and imgs[0].is_cuda:
        return jpeg_torchvision(imgs, qualities)
    return [jpeg_cv2(img, q) for img, q in zip(imgs, qualities)]
