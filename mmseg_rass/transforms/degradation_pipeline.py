"""Real-ESRGAN second-order degradation: presets, validation, parameter sampling, batched pipeline.

One code path serves the per-image transform (:class:`~mmseg_rass.transforms.Degrade`, a
batch of one) and the batched data preprocessor: :func:`sample_params` draws every random
choice of one image from a ``numpy.random.Generator`` (plus a seed for its noise), and
:func:`degrade_batch` applies the drawn parameters to a batch on the batch's device.

Pipeline (Real-ESRGAN ``feed_data``; ``x`` = HQ image, ``s`` = output scale):
stage 1: blur k1 → resize (up/down/keep) → Gaussian or Poisson noise → clamp → JPEG;
stage 2 (``second_order``): blur k2 (``second_blur_prob``) → resize to ``size/s · r2`` →
noise → either [resize to ``size/s`` + final sinc, then JPEG] or [JPEG, then resize + final
sinc] (``final_resize_first_prob``); without stage 2 the image is resized to ``size/s`` and
final-sinc filtered. The result is quantised to 8 bits.
"""
import copy
import hashlib
import math
from numbers import Integral, Real

import numpy as np
import torch

from ..errors import ParameterError
from .degradation_kernels import KERNEL_TYPE_INDEX, KERNEL_TYPES, build_kernels, filter2d
from .degradation_ops import RESIZE_MODES, gaussian_noise, jpeg, poisson_noise, resize

BLUR_TYPES = KERNEL_TYPES[:6]
KERNEL_SIZE_MAX = 21

RASS_X1 = dict(
    scale=1,
    resize_back=False,
    # stage 1
    blur_prob=1.0,
    kernel_range=(7, 21),
    kernel_list=list(BLUR_TYPES),
    kernel_prob=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    sinc_prob=0.1,
    blur_sigma=(0.2, 3.0),
    rotation_range=(-math.pi, math.pi),
    betag_range=(0.5, 4.0),
    betap_range=(1.0, 2.0),
    resize_prob=(0.2, 0.7, 0.1),
    resize_range=(0.15, 1.5),
    resize_modes=list(RESIZE_MODES),
    noise_prob=1.0,
    gaussian_noise_prob=0.5,
    noise_range=(1.0, 30.0),
    poisson_scale_range=(0.05, 3.0),
    gray_noise_prob=0.4,
    jpeg_prob=1.0,
    jpeg_range=(30, 95),
    # stage 2
    second_order=True,
    second_blur_prob=0.8,
    kernel_list2=list(BLUR_TYPES),
    kernel_prob2=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    sinc_prob2=0.1,
    blur_sigma2=(0.2, 1.5),
    betag_range2=(0.5, 4.0),
    betap_range2=(1.0, 2.0),
    resize_prob2=(0.3, 0.4, 0.3),
    resize_range2=(0.3, 1.2),
    noise_prob2=1.0,
    gaussian_noise_prob2=0.5,
    noise_range2=(1.0, 25.0),
    poisson_scale_range2=(0.05, 2.5),
    gray_noise_prob2=0.4,
    jpeg_prob2=1.0,
    jpeg_range2=(30, 95),
    # final stage
    final_sinc_prob=0.8,
    final_resize_first_prob=0.5,
    final_resize_modes=list(RESIZE_MODES),
)

PRESETS = dict(rass_x1=RASS_X1, realesrgan_x4=dict(RASS_X1, scale=4))

# one corruption: stage 1 only, everything else off
_SINGLE = dict(blur_prob=0.0, resize_prob=(0.0, 0.0, 1.0), noise_prob=0.0, jpeg_prob=0.0,
               second_order=False, final_sinc_prob=0.0)
BLUR_SIGMAS = (1.0, 1.5, 2.0, 2.5, 3.0)
NOISE_SIGMAS = (5.0, 10.0, 15.0, 22.0, 30.0)
JPEG_QUALITIES = (85, 65, 50, 40, 30)
DOWNSAMPLE_SCALES = (0.7, 0.5, 0.35, 0.25, 0.15)
# mixed: the rass_x1 distribution with its strength ranges widened with severity (5 = rass_x1)
MIXED_TABLE = dict(
    blur_sigma=[(0.2, 1.0), (0.2, 1.5), (0.2, 2.0), (0.2, 2.5), (0.2, 3.0)],
    blur_sigma2=[(0.2, 0.5), (0.2, 0.75), (0.2, 1.0), (0.2, 1.25), (0.2, 1.5)],
    resize_range=[(0.75, 1.5), (0.6, 1.5), (0.45, 1.5), (0.3, 1.5), (0.15, 1.5)],
    resize_range2=[(0.8, 1.2), (0.7, 1.2), (0.55, 1.2), (0.45, 1.2), (0.3, 1.2)],
    noise_range=[(1.0, 6.0), (1.0, 12.0), (1.0, 18.0), (1.0, 24.0), (1.0, 30.0)],
    noise_range2=[(1.0, 5.0), (1.0, 10.0), (1.0, 15.0), (1.0, 20.0), (1.0, 25.0)],
    poisson_scale_range=[(0.05, 0.6), (0.05, 1.2), (0.05, 1.8), (0.05, 2.4), (0.05, 3.0)],
    poisson_scale_range2=[(0.05, 0.5), (0.05, 1.0), (0.05, 1.5), (0.05, 2.0), (0.05, 2.5)],
    jpeg_range=[(83, 95), (70, 95), (56, 95), (43, 95), (30, 95)],
    jpeg_range2=[(83, 95), (70, 95), (56, 95), (43, 95), (30, 95)],
)


def _family(name, severity):
    i = severity - 1
    if name == 'blur':
        return dict({**RASS_X1, **_SINGLE}, blur_prob=1.0, kernel_range=(21, 21),
                    kernel_list=['iso'], kernel_prob=[1.0], sinc_prob=0.0,
                    blur_sigma=(BLUR_SIGMAS[i], BLUR_SIGMAS[i]))
    if name == 'noise':
        return dict({**RASS_X1, **_SINGLE}, noise_prob=1.0, gaussian_noise_prob=1.0,
                    gray_noise_prob=0.0, noise_range=(NOISE_SIGMAS[i], NOISE_SIGMAS[i]))
    if name == 'jpeg':
        return dict({**RASS_X1, **_SINGLE}, jpeg_prob=1.0,
                    jpeg_range=(JPEG_QUALITIES[i], JPEG_QUALITIES[i]))
    if name == 'downsample':
        s = DOWNSAMPLE_SCALES[i]
        return dict({**RASS_X1, **_SINGLE}, resize_prob=(0.0, 1.0, 0.0), resize_range=(s, s),
                    resize_modes=['area'], final_resize_modes=['bicubic'])
    return dict(RASS_X1, **{k: v[i] for k, v in MIXED_TABLE.items()})


FAMILIES = ('blur', 'noise', 'jpeg', 'downsample', 'mixed')

_PROBS = ('blur_prob', 'sinc_prob', 'noise_prob', 'gaussian_noise_prob', 'gray_noise_prob',
          'jpeg_prob', 'second_blur_prob', 'sinc_prob2', 'noise_prob2', 'gaussian_noise_prob2',
          'gray_noise_prob2', 'jpeg_prob2', 'final_sinc_prob', 'final_resize_first_prob')
_POSITIVE_RANGES = ('blur_sigma', 'blur_sigma2', 'betag_range', 'betag_range2', 'betap_range',
                    'betap_range2', 'resize_range', 'resize_range2')
_NONNEG_RANGES = ('noise_range', 'noise_range2', 'poisson_scale_range', 'poisson_scale_range2')


def _bad(key, value, problem):
    return ParameterError(f'Degrade: {key}={value!r} {problem}')


def _is_number(value):
    """A finite real number (not a bool, NaN or infinity)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(cfg, key, low_min=None, high_max=None, strict=False):
    value = cfg[key]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(_is_number(v) for v in value)):
        raise _bad(key, value, 'must be a (low, high) pair of finite numbers')
    low, high = value
    if low > high:
        raise _bad(key, value, 'is an inverted range: low must be <= high')
    if low_min is not None and (low <= low_min if strict else low < low_min):
        raise _bad(key, value, f'must be {">" if strict else ">="} {low_min} '
                   '(a negative or zero sigma/scale is not a degradation)')
    if high_max is not None and high > high_max:
        raise _bad(key, value, f'must be <= {high_max}')


def _check_choice(cfg, list_key, prob_key, allowed):
    names, probs = cfg[list_key], cfg[prob_key]
    if not isinstance(names, (list, tuple)) or not names or any(n not in allowed for n in names):
        raise _bad(list_key, names, f'must be a non-empty list drawn from {list(allowed)}')
    if (not isinstance(probs, (list, tuple)) or len(probs) != len(names)
            or not all(_is_number(p) and p >= 0 for p in probs) or abs(sum(probs) - 1) > 1e-6):
        raise _bad(prob_key, probs, f'must be {len(names)} non-negative probabilities '
                   f'summing to 1 (one per entry of {list_key})')


def validate(cfg):
    """Check every key of a degradation config; raise one ``ValueError`` naming the bad key."""
    for key in _PROBS:
        p = cfg[key]
        if not _is_number(p) or not 0 <= p <= 1:
            raise _bad(key, p, 'must be a probability in [0, 1]')
    for key in _POSITIVE_RANGES:
        _check_range(cfg, key, low_min=0, strict=True)
    for key in _NONNEG_RANGES:
        _check_range(cfg, key, low_min=0)
    _check_range(cfg, 'rotation_range')
    for key in ('jpeg_range', 'jpeg_range2'):
        _check_range(cfg, key, low_min=1, high_max=100)
        if any(int(v) != v for v in cfg[key]):
            raise _bad(key, cfg[key], 'must hold integer JPEG qualities')
    _check_range(cfg, 'kernel_range', low_min=1, high_max=KERNEL_SIZE_MAX)
    if any(int(v) != v or int(v) % 2 == 0 for v in cfg['kernel_range']):
        raise _bad('kernel_range', cfg['kernel_range'], 'must hold odd kernel sizes')
    _check_choice(cfg, 'kernel_list', 'kernel_prob', BLUR_TYPES)
    _check_choice(cfg, 'kernel_list2', 'kernel_prob2', BLUR_TYPES)
    for suffix in ('', '2'):
        probs = cfg['resize_prob' + suffix]
        if (not isinstance(probs, (list, tuple)) or len(probs) != 3
                or not all(_is_number(p) and p >= 0 for p in probs) or abs(sum(probs) - 1) > 1e-6):
            raise _bad('resize_prob' + suffix, probs,
                       'must be 3 non-negative probabilities (up, down, keep) summing to 1')
        low, high = cfg['resize_range' + suffix]
        if probs[0] > 0 and high < 1:
            raise _bad('resize_range' + suffix, (low, high), 'must reach >= 1 when up-scaling '
                       'has a non-zero probability (resize_prob[0])')
        if probs[1] > 0 and low > 1:
            raise _bad('resize_range' + suffix, (low, high), 'must reach <= 1 when down-scaling '
                       'has a non-zero probability (resize_prob[1])')
    for key in ('resize_modes', 'final_resize_modes'):
        modes = cfg[key]
        if not isinstance(modes, (list, tuple)) or not modes or any(
                m not in RESIZE_MODES for m in modes):
            raise _bad(key, modes, f'must be a non-empty list drawn from {list(RESIZE_MODES)}')
    if not isinstance(cfg['scale'], int) or isinstance(cfg['scale'], bool) or cfg['scale'] < 1:
        raise _bad('scale', cfg['scale'], 'must be a positive integer')
    for key in ('second_order', 'resize_back'):
        if not isinstance(cfg[key], bool):
            raise _bad(key, cfg[key], 'must be True or False')


def make_config(preset='rass_x1', severity=None, **overrides):
    """The validated degradation parameters of a preset or family, with overrides.

    Args:
        preset (str): ``rass_x1``, ``realesrgan_x4`` or a family in :data:`FAMILIES`.
        severity (int | None): 1–5 for families, None for presets.
        **overrides: any key of :data:`RASS_X1`.

    Returns:
        dict: the full parameter dict.
    """
    if preset in PRESETS:
        if severity is not None:
            raise _bad('severity', severity, f'must be None for preset {preset!r} (severities '
                       f'belong to the families {list(FAMILIES)})')
        cfg = copy.deepcopy(PRESETS[preset])
    elif preset in FAMILIES:
        if (not isinstance(severity, Integral) or isinstance(severity, bool)
                or not 1 <= severity <= 5):
            raise _bad('severity', severity, f'must be an integer 1-5 for family {preset!r}')
        cfg = copy.deepcopy(_family(preset, severity))
    else:
        raise _bad('preset', preset, f'is unknown: use one of {list(PRESETS) + list(FAMILIES)}')
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise _bad(unknown[0], overrides[unknown[0]], f'is not a degradation parameter: '
                   f'known keys are {sorted(cfg)}')
    cfg.update(overrides)
    validate(cfg)
    return cfg


def stable_seed(*parts):
    """A 63-bit seed from the SHA-256 of the parts (identical on every machine and process)."""
    digest = hashlib.sha256('|'.join(str(p) for p in parts).encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'little') & (2 ** 63 - 1)


def _uniform(rng, r):
    return float(rng.uniform(r[0], r[1])) if r[0] < r[1] else float(r[0])


def _sample_kernel(rng, cfg, suffix, sinc_prob):
    sizes = list(range(int(cfg['kernel_range'][0]), int(cfg['kernel_range'][1]) + 1, 2))
    size = int(rng.choice(sizes))
    k = dict(type='pulse', size=size, sigma_x=1.0, sigma_y=1.0, theta=0.0, beta=1.0,
             omega_c=math.pi)
    if rng.uniform() < sinc_prob:
        k.update(type='sinc', omega_c=_uniform(rng, (math.pi / 3 if size < 13 else math.pi / 5,
                                                     math.pi)))
        return k
    names, probs = cfg['kernel_list' + suffix], cfg['kernel_prob' + suffix]
    k['type'] = names[int(rng.choice(len(names), p=np.asarray(probs) / sum(probs)))]
    k['sigma_x'] = _uniform(rng, cfg['blur_sigma' + suffix])
    if k['type'].endswith('aniso'):
        k['sigma_y'] = _uniform(rng, cfg['blur_sigma' + suffix])
        k['theta'] = _uniform(rng, cfg['rotation_range'])
    else:
        k['sigma_y'] = k['sigma_x']
    if k['type'].startswith(('generalized', 'plateau')):
        lo, hi = cfg[('betag_range' if k['type'].startswith('generalized') else 'betap_range')
                     + suffix]
        k['beta'] = _uniform(rng, (lo, 1.0) if rng.uniform() < 0.5 else (1.0, hi))
    return k


def _sample_resize(rng, cfg, suffix):
    way = ('up', 'down', 'keep')[int(rng.choice(3, p=np.asarray(cfg['resize_prob' + suffix])))]
    lo, hi = cfg['resize_range' + suffix]
    scale = {'up': lambda: _uniform(rng, (max(lo, 1.0), hi)),
             'down': lambda: _uniform(rng, (lo, min(hi, 1.0))), 'keep': lambda: 1.0}[way]()
    return scale, str(rng.choice(cfg['resize_modes']))


def _sample_noise(rng, cfg, suffix):
    if rng.uniform() >= cfg['noise_prob' + suffix]:
        return None
    if rng.uniform() < cfg['gaussian_noise_prob' + suffix]:
        kind, strength = 'gaussian', _uniform(rng, cfg['noise_range' + suffix])
    else:
        kind, strength = 'poisson', _uniform(rng, cfg['poisson_scale_range' + suffix])
    return dict(kind=kind, strength=strength,
                gray=bool(rng.uniform() < cfg['gray_noise_prob' + suffix]))


def _sample_jpeg(rng, cfg, suffix):
    if rng.uniform() >= cfg['jpeg_prob' + suffix]:
        return None
    lo, hi = cfg['jpeg_range' + suffix]
    return int(rng.integers(int(lo), int(hi), endpoint=True))


def sample_params(cfg, rng):
    """Draw every random choice of one image.

    Args:
        cfg (dict): a config from :func:`make_config`.
        rng (numpy.random.Generator): the random source.

    Returns:
        dict: plain Python values (JSON-serialisable): ``kernel1``, ``resize1``, ``noise1``,
        ``jpeg1``, ``kernel2``, ``resize2``, ``noise2``, ``jpeg2``, ``final_resize_first``,
        ``final_mode``, ``final_kernel`` and ``noise_seed`` (seeds the image's noise).
    """
    p = dict(kernel1=_sample_kernel(rng, cfg, '', cfg['sinc_prob']))
    if rng.uniform() >= cfg['blur_prob']:
        p['kernel1'] = dict(p['kernel1'], type='pulse')
    p['resize1'] = _sample_resize(rng, cfg, '')
    p['noise1'] = _sample_noise(rng, cfg, '')
    p['jpeg1'] = _sample_jpeg(rng, cfg, '')
    if cfg['second_order']:
        p['kernel2'] = _sample_kernel(rng, cfg, '2', cfg['sinc_prob2'])
        if rng.uniform() >= cfg['second_blur_prob']:
            p['kernel2'] = dict(p['kernel2'], type='pulse')
        p['resize2'] = _sample_resize(rng, cfg, '2')
        p['noise2'] = _sample_noise(rng, cfg, '2')
        p['jpeg2'] = _sample_jpeg(rng, cfg, '2')
        p['final_resize_first'] = bool(rng.uniform() < cfg['final_resize_first_prob'])
    p['final_mode'] = str(rng.choice(cfg['final_resize_modes']))
    sizes = list(range(int(cfg['kernel_range'][0]), int(cfg['kernel_range'][1]) + 1, 2))
    final = dict(type='pulse', size=int(rng.choice(sizes)), sigma_x=1.0, sigma_y=1.0, theta=0.0,
                 beta=1.0, omega_c=_uniform(rng, (math.pi / 3, math.pi)))
    if rng.uniform() < cfg['final_sinc_prob']:
        final['type'] = 'sinc'
    p['final_kernel'] = final
    p['noise_seed'] = int(rng.integers(0, 2 ** 63 - 1))
    return p


def kernels_from_params(kernels, device=None, dtype=torch.float32):
    """(B, 21, 21) tensor from a list of kernel dicts drawn by :func:`sample_params`."""
    cols = {key: [k[key] for k in kernels] for key in
            ('size', 'sigma_x', 'sigma_y', 'theta', 'beta', 'omega_c')}
    types = [KERNEL_TYPE_INDEX[k['type']] for k in kernels]
    return build_kernels(torch.tensor(types), torch.tensor(cols['size']),
                         *(torch.tensor(cols[k], dtype=torch.float64) for k in
                           ('sigma_x', 'sigma_y', 'theta', 'beta', 'omega_c')),
                         pad_to=KERNEL_SIZE_MAX, device=device, dtype=dtype)


def _add_noise(img, noise, generator):
    if noise is None:
        return img
    fn = gaussian_noise if noise['kind'] == 'gaussian' else poisson_noise
    return torch.clamp(img + fn(img, noise['strength'], noise['gray'], generator), 0, 1)


def _jpeg_where(imgs, qualities):
    idx = [i for i, q in enumerate(qualities) if q is not None]
    imgs = [img.clamp(0, 1) for img in imgs]
    if idx:
        for i, out in zip(idx, jpeg([imgs[i] for i in idx], [qualities[i] for i in idx])):
            imgs[i] = out
    return imgs


def make_generator(seed, device):
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


# on CPU, batches are degraded in chunks of at most this many values per chunk (3 x H x W each):
# a 512x1024 image alone, up to 16 crops of 128x256; elementwise passes over a chunk then stay
# in cache, which makes the batch faster per image than one whole-batch tensor
CPU_CHUNK_VALUES = 3 * 512 * 1024


def degrade_batch(imgs, params, cfg, dtype=None):
    """Degrade a batch of same-size images, each with its own drawn parameters.

    The kernels of the whole batch are built at once; on CPU the images then run in chunks of
    at most :data:`CPU_CHUNK_VALUES` values. An image's result does not depend on the rest of
    its batch.

    Args:
        imgs (Tensor): (B, 3, H, W) BGR images on any device: float in [0, 1], or uint8
            (0-255, converted chunk by chunk to ``dtype``).
        params (list[dict]): B parameter dicts from :func:`sample_params`.
        cfg (dict): the config the parameters were drawn from.
        dtype (torch.dtype | None): computation dtype (float64 makes results
            machine-independent); default: that of float ``imgs``, float32 for uint8 ones.

    Returns:
        Tensor: (B, 3, h, w) uint8 images, ``(h, w) = (H // scale, W // scale)`` (or
        ``(H, W)`` with ``resize_back``).
    """
    b = imgs.shape[0]
    if len(params) != b:
        raise ValueError(f'degrade_batch: {len(params)} parameter dicts for {b} images')
    if dtype is None:
        dtype = torch.float32 if imgs.dtype == torch.uint8 else imgs.dtype
    kernels = [kernels_from_params([p[key] for p in params], imgs.device, dtype)
               for key in ('kernel1', 'kernel2', 'final_kernel') if key in params[0]]
    scale = 255. if imgs.dtype == torch.uint8 else 1.
    step = b if imgs.device.type != 'cpu' else max(1, CPU_CHUNK_VALUES // imgs[0].numel())
    outs = [_degrade(imgs[i:i + step].to(dtype) / scale, params[i:i + step], cfg,
                     [k[i:i + step] for k in kernels]) for i in range(0, b, step)]
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def _degrade(imgs, params, cfg, kernels):
    """:func:`degrade_batch` on a chunk, with its kernels (kernel1, [kernel2], final_kernel)."""
    b, _, h, w = imgs.shape
    dev = imgs.device
    gens = [make_generator(p['noise_seed'], dev) for p in params]
    s = cfg['scale']
    out = filter2d(imgs, kernels[0])
    outs = [resize(x, p['resize1'][1], scale_factor=p['resize1'][0])
            for x, p in zip(out.split(1), params)]
    outs = [_add_noise(x, p['noise1'], g) for x, p, g in zip(outs, params, gens)]
    outs = _jpeg_where(outs, [p['jpeg1'] for p in params])
    target = (h // s, w // s)
    if cfg['second_order']:
        outs = [filter2d(x, kernels[1][i:i + 1]) for i, x in enumerate(outs)]
        outs = [resize(x, p['resize2'][1], size=(int(h / s * p['resize2'][0]),
                                                 int(w / s * p['resize2'][0])))
                for x, p in zip(outs, params)]
        outs = [_add_noise(x, p['noise2'], g) for x, p, g in zip(outs, params, gens)]
        outs = _jpeg_where(outs, [None if p['final_resize_first'] else p['jpeg2']
                                  for p in params])
    outs = [resize(x, p['final_mode'], size=target) for x, p in zip(outs, params)]
    out = filter2d(torch.cat(outs) if b > 1 else outs[0], kernels[-1])
    if cfg['second_order']:
        out = _jpeg_where(list(out.split(1)), [
            p['jpeg2'] if p['final_resize_first'] else None for p in params])
        out = torch.cat(out) if b > 1 else out[0]
    out = torch.clamp((out * 255.).round_(), 0, 255)
    if cfg['resize_back'] and s != 1:
        out = torch.clamp(resize(out, 'bicubic', size=(h, w)).round_(), 0, 255)
    return out.to(torch.uint8)
