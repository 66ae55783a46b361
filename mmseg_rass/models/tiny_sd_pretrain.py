"""Pretrain a small Stable Diffusion (SD2.1-base block structure) on the demo training images.

At full scale every diffusion method of the project starts from a pretrained SD2.1-base; none
can be downloaded here, so this module makes a small one the way Stable Diffusion was made, in
two stages, and saves it as a diffusers folder that every ``pretrained_model_path`` option
loads exactly as it loads SD2.1-base (``model_index.json``, ``vae/``, ``unet/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``):

1. **VAE** (diffusers ``AutoencoderKL``, 4 latent channels, ×8) as SD's KL-f8 autoencoder:
   pixel MSE + KL (weight 1e-6, normalised as in the LDM code) on random crops of the
   training images, posterior samples in training. No LPIPS (no VGG weights exist here) and
   no patch GAN. Then ``scaling_factor`` = 1 / std of the posterior samples of the training
   latents (how LDM chose 0.18215), written into ``vae/config.json``.
2. **UNet** (``UNet2DConditionModel``) as an ε-prediction denoiser on the scaled latents with
   SD2.1-base's training schedule (DDPM, 1000 steps, scaled-linear betas 0.00085-0.012),
   conditioned on a caption naming the classes present in each crop (``"road,sidewalk,car"``:
   the tags RAM would give, in the format of the ``gt`` prompt), the empty prompt for 10 % of
   the samples (SD's caption dropout). The CLIP text encoder is random and frozen (from the
   seed).

Everything is seeded, so the same settings give bit-identical weights (for the same torch
build and thread count). The folder carries a manifest (:data:`MANIFEST_NAME`) with the
content key (:func:`pretrain_key`: architecture, data file hashes, seed, hyper-parameters,
source digest of this code), the measured numbers, and the SHA-256 of every saved file;
:func:`ensure_tiny_sd` reuses a folder only when all of that matches, else rebuilds it.
"""
import contextlib
import glob
import hashlib
import json
import math
import os
import os.path as osp
import shutil
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..datasets.demo_data import check_generator_version
from ..evaluation.cells import content_key, dump_json, source_digest
from ..sam.prior_io import file_sha256
from .diffusion import ARCHS, build_scheduler, build_text_encoder, build_unet, build_vae
from .prompts import build_class_prompt, present_classes, resolve_class_names, tokenize

MANIFEST_NAME = 'tiny_sd_manifest.json'
MANIFEST_FORMAT = 'mmseg_rass.tiny_sd.v1'
DEFAULT_OUT = 'data/tiny_sd'

# Hyper-parameters of each stage (overridable per key; all of them are in the content key).
VAE_DEFAULTS = dict(
    steps=6000,        # optimiser steps
    batch_size=4,
    crop=(128, 256),   # random crops (height, width in pixels), random horizontal flip
    lr=2e-3,           # AdamW, linear warm-up then cosine decay to 0
    warmup=50,
    kl_weight=1e-6,    # SD's KL-f8 weight (on sums over pixels / latents, as the LDM code)
)
UNET_DEFAULTS = dict(
    steps=500,
    batch_size=16,
    latent_crop=(16, 32),  # random crops of the training latents (128 x 256 pixels)
    lr=1e-3,
    warmup=50,
    caption_dropout=0.1,
)
# Fixed evaluation timesteps of the validation denoising loss.
EVAL_TIMESTEPS = (50, 250, 500, 750, 950)


class TinySDError(RuntimeError):
    """A folder or setting the pretraining cannot use (one line saying what to do)."""


# --------------------------------------------------------------------------- settings and key
def pretrain_settings(arch='small', seed=0, vae=None, unet=None):
    """All settings of one pretraining: ``arch`` (an :data:`ARCHS` name or a dict of the three
    part configs), ``seed`` and each stage's hyper-parameters (defaults updated by ``vae`` /
    ``unet``).

    Returns:
        dict: ``dict(arch=<name or dict>, configs=<resolved part configs>, seed=, vae=, unet=)``.
    """
    configs = ARCHS.get(arch) if isinstance(arch, str) else arch
    if not isinstance(configs, dict) or set(configs) != {'unet', 'vae', 'text_encoder'}:
        raise TinySDError(f'pretrain_tiny_sd: arch must be one of {sorted(ARCHS)} or a dict '
                          f'with keys unet, vae, text_encoder, got {arch!r}')
    stages = {}
    for name, defaults, given in (('vae', VAE_DEFAULTS, vae), ('unet', UNET_DEFAULTS, unet)):
        unknown = sorted(set(given or {}) - set(defaults))
        if unknown:
            raise TinySDError(f'pretrain_tiny_sd: unknown {name} settings {unknown}; known: '
                              f'{sorted(defaults)}')
        stages[name] = dict(defaults, **(given or {}))
    settings = dict(arch=arch, configs=configs, seed=int(seed), **stages)
    return json.loads(json.dumps(settings))  # tuples -> lists: as stored in the manifest


def data_files(data_root):
    """The demo images and labels the pretraining reads (train) and reports on (val); data of
    another demo-generator version is refused.

    Returns:
        dict[str, list[tuple[str, str]]]: split -> sorted (image, label) paths.
    """
    files = {}
    for split in ('train', 'val'):
        img_dir = osp.join(data_root, 'leftImg8bit', split)
        images = sorted(glob.glob(osp.join(img_dir, '*', '*_leftImg8bit.png')))
        if not images:
            raise TinySDError(f'pretrain_tiny_sd: no images in {img_dir}: generate the demo data '
                              f'with `python tools/make_demo_data.py --out {data_root}`')
        pairs = []
        for image in images:
            stem = osp.relpath(image, img_dir)[:-len('_leftImg8bit.png')]
            label = osp.join(data_root, 'gtFine', split, stem + '_gtFine_labelTrainIds.png')
            if not osp.isfile(label):
                raise TinySDError(f'pretrain_tiny_sd: label {label} of {image} is missing: '
                                  f'regenerate the demo data with `python '
                                  f'tools/make_demo_data.py --out {data_root}`')
            pairs.append((image, label))
        files[split] = pairs
    try:
        check_generator_version(data_root, 'pretrain_tiny_sd')
    except ValueError as err:
        raise TinySDError(str(err)) from None
    return files


def pretrain_key(data_root, settings):
    """The content key of a pretraining and its parts.

    Args:
        data_root (str): Demo dataset root.
        settings (dict): :func:`pretrain_settings`.

    Returns:
        tuple[str, dict]: SHA-256 key and its parts: the settings, the SHA-256 of every data
        file (relative path + content), and the source digest of this module and of
        ``diffusion.py`` (the builders).
    """
    digest = hashlib.sha256()
    for split, pairs in data_files(data_root).items():
        for pair in pairs:
            for path in pair:
                digest.update(osp.relpath(path, data_root).replace(os.sep, '/').encode())
                digest.update(file_sha256(path).encode())
    parts = dict(format=MANIFEST_FORMAT, settings=settings, data_sha256=digest.hexdigest(),
                 code_sha256=[source_digest(osp.dirname(osp.abspath(__file__)), stem)
                                  for stem in ('tiny_sd_pretrain', 'diffusion')])
    return content_key(parts), parts


# --------------------------------------------------------------------------- data
def load_split(pairs):
    """Images (N, 3, H, W) uint8 RGB and train-id labels (N, H, W) uint8 of (image, label)
    pairs; all images must have one size."""
    images, labels = [], []
    for image, label in pairs:
        img = cv2.imread(image, cv2.IMREAD_COLOR)
        lab = cv2.imread(label, cv2.IMREAD_UNCHANGED)
        if img is None or lab is None or img.shape[:2] != lab.shape[:2] or \
                (images and img.shape != images[0].shape):
            raise TinySDError(f'pretrain_tiny_sd: {image} / {label} are unreadable or of '
                              'another size than the other images: regenerate the demo data')
        images.append(img[..., ::-1])
        labels.append(lab)
    images = torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2)
    return images.contiguous(), torch.from_numpy(np.stack(labels))


def to_unit_range(images):
    """uint8 images -> float32 in [-1, 1] (SD's VAE input)."""
    return images.float() / 127.5 - 1


def _random_crops(tensors, size, batch_size, generator, scales=None):
    """The same random crops (and horizontal flips) of every tensor in ``tensors``.

    ``tensors[0]`` is (N, C, h, w) and is cut into ``size`` = (height, width) windows (an int:
    squares); tensor ``k`` is ``scales[k]`` times larger spatially (e.g. labels at pixel
    resolution for crops of latents: 8). Returns the cropped batches.
    """
    ch, cw = (size, size) if isinstance(size, int) else size
    n, _, h, w = tensors[0].shape
    index = torch.randint(n, (batch_size, ), generator=generator)
    ys = torch.randint(h - ch + 1, (batch_size, ), generator=generator)
    xs = torch.randint(w - cw + 1, (batch_size, ), generator=generator)
    flips = torch.rand(batch_size, generator=generator) < 0.5
    out = []
    for tensor, f in zip(tensors, scales or [1] * len(tensors)):
        crops = [tensor[i, ..., y * f:(y + ch) * f, x * f:(x + cw) * f]
                 for i, y, x in zip(index.tolist(), ys.tolist(), xs.tolist())]
        crops = torch.stack([c.flip(-1) if flip else c for c, flip in zip(crops, flips)])
        out.append(crops)
    return out


def _lr_lambda(warmup, steps):
    """Linear warm-up, then cosine decay to 0."""
    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))
    return factor


def _optimiser(params, cfg):
    optimiser = torch.optim.AdamW(params, lr=cfg['lr'], weight_decay=0.01)
    return optimiser, torch.optim.lr_scheduler.LambdaLR(
        optimiser, _lr_lambda(cfg['warmup'], cfg['steps']))


def _fit(model, cfg, step_loss, describe, log):
    """Optimise ``model`` for ``cfg['steps']`` steps (AdamW, warm-up + cosine).

    Args:
        step_loss (callable): Draws a batch and returns (loss to minimise, value to log).
        describe (callable): ``(step, mean value) -> str`` for the progress lines.

    Returns:
        list[dict]: The curve: ``step`` and the mean ``loss`` value over each tenth of the steps.
    """
    model.train()
    optimiser, schedule = _optimiser(model.parameters(), cfg)
    curve, window, every = [], [], max(cfg['steps'] // 10, 1)
    for step in range(cfg['steps']):
        loss, value = step_loss()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        window.append(value.item())
        if (step + 1) % every == 0 or step + 1 == cfg['steps']:
            curve.append(dict(step=step + 1, loss=float(np.mean(window))))
            window = []
            log(f'[tiny_sd] {describe(step + 1, curve[-1]["loss"])}')
    model.eval()
    return curve


# --------------------------------------------------------------------------- stage 1: VAE
def vae_loss(vae, batch, kl_weight, generator=None):
    """SD's KL-f8 autoencoder loss without LPIPS/GAN: pixel MSE + ``kl_weight`` · KL on a
    posterior sample, both summed per image and averaged over the batch as in the LDM code
    (here divided by the pixel count: the same ratio, so ``kl_weight`` means what it means
    there).

    Returns:
        tuple[Tensor, Tensor, Tensor]: total loss, MSE per pixel value, KL per pixel value.
    """
    posterior = vae.encode(batch).latent_dist
    recon = vae.decode(posterior.sample(generator=generator)).sample
    mse = F.mse_loss(recon, batch)
    kl = posterior.kl().mean() / batch[0].numel()
    return mse + kl_weight * kl, mse, kl


def train_vae(vae, images, cfg, generator, log):
    """Train the VAE on random crops of ``images`` (N, 3, H, W) uint8; returns the
    reconstruction curve (MSE in [-1, 1] units, :func:`_fit`)."""
    def step_loss():
        batch, = _random_crops([images], cfg['crop'], cfg['batch_size'], generator)
        loss, mse, _ = vae_loss(vae, to_unit_range(batch), cfg['kl_weight'], generator)
        return loss, mse

    return _fit(vae, cfg, step_loss, lambda step, mse: (
        f'vae step {step}/{cfg["steps"]}: MSE {mse:.5f} (≈ {10 * math.log10(4 / mse):.2f} dB '
        'on the crops)'), log)


@torch.no_grad()
def latent_moments(vae, images, chunk=8):
    """Posterior mean and log-variance (N, 4, H/8, W/8) of whole images (N, 3, H, W) uint8."""
    means, logvars = [], []
    for start in range(0, len(images), chunk):
        dist = vae.encode(to_unit_range(images[start:start + chunk])).latent_dist
        means.append(dist.mean)
        logvars.append(dist.logvar)
    return torch.cat(means), torch.cat(logvars)


def latent_scaling_factor(mean, logvar, generator):
    """1 / std of posterior samples of the latents — how the LDM code set SD's 0.18215."""
    sample = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator)
    return float(1.0 / sample.flatten().std())


@torch.no_grad()
def vae_psnr(vae, images, chunk=8):
    """Mean PSNR (dB) over images (N, 3, H, W) uint8 of their reconstructions from the
    posterior mean, rounded to uint8 as a saved image would be."""
    values = []
    for start in range(0, len(images), chunk):
        batch = images[start:start + chunk]
        latent = vae.encode(to_unit_range(batch)).latent_dist.mean
        recon = ((vae.decode(latent).sample.clamp(-1, 1) + 1) * 127.5).round()
        mse = (recon - batch.float()).pow(2).flatten(1).mean(1)
        values += (10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10))).tolist()
    return float(np.mean(values))


# --------------------------------------------------------------------------- stage 2: UNet
class CaptionEncoder:
    """Caption ids of label crops and their (memoised) frozen text-encoder states."""

    def __init__(self, text_encoder, tokenizer, class_names):
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.class_names = list(class_names)
        self.empty = tokenize(tokenizer, '')
        self._memo = {}

    def ids(self, labels, drop):
        """(B, 77) ids: the classes present in each label crop (B, h, w), or the empty prompt
        where ``drop`` (B, ) is True."""
        rows = []
        for label, dropped in zip(labels, drop.tolist()):
            if dropped:
                rows.append(self.empty)
            else:
                classes = present_classes(label, len(self.class_names))
                rows.append(build_class_prompt(self.tokenizer, self.class_names, classes)[0])
        return torch.stack(rows)

    @torch.no_grad()
    def states(self, ids):
        """(B, 77, D) last hidden states, as the project's prompt conditioner encodes."""
        keys = [tuple(row.tolist()) for row in ids]
        missing = [i for i, k in enumerate(keys) if k not in self._memo]
        if missing:
            out = self.text_encoder(ids[missing])[0].float()
            for i, state in zip(missing, out):
                self._memo[keys[i]] = state
        return torch.stack([self._memo[k] for k in keys])


def train_unet(unet, latents, labels, captions, scheduler, cfg, generator, log):
    """Train the UNet as SD's ε-prediction denoiser on random crops of the scaled training
    latents ``(mean, logvar, scale)`` (posterior samples drawn each step), with captions of
    the classes present in each crop; returns the ε-MSE curve (:func:`_fit`)."""
    mean, logvar, scale = latents

    def step_loss():
        m, lv, lab = _random_crops([mean, logvar, labels[:, None]], cfg['latent_crop'],
                                   cfg['batch_size'], generator, scales=(1, 1, 8))
        z0 = (m + (0.5 * lv).exp() * torch.randn(m.shape, generator=generator)) * scale
        noise = torch.randn(z0.shape, generator=generator)
        t = torch.randint(scheduler.config.num_train_timesteps, (len(z0), ), generator=generator)
        drop = torch.rand(len(z0), generator=generator) < cfg['caption_dropout']
        context = captions.states(captions.ids(lab[:, 0], drop))
        loss = F.mse_loss(unet(scheduler.add_noise(z0, noise, t), t, context).sample, noise)
        return loss, loss

    return _fit(unet, cfg, step_loss,
                lambda step, loss: f'unet step {step}/{cfg["steps"]}: ε-MSE {loss:.4f}', log)


@torch.no_grad()
def denoising_loss(unet, latents, labels, captions, scheduler, seed, empty_prompt=False,
                   timesteps=EVAL_TIMESTEPS):
    """ε-MSE per timestep on whole (validation) latents with fixed noise, conditioned on their
    captions or on the empty prompt (predicting ε = 0 scores 1.0)."""
    mean, _, scale = latents
    generator = torch.Generator().manual_seed(seed)
    drop = torch.full((len(labels), ), empty_prompt, dtype=torch.bool)
    context = captions.states(captions.ids(labels, drop))
    z0 = mean * scale
    out = {}
    for t in timesteps:
        noise = torch.randn(z0.shape, generator=generator)
        tt = torch.full((len(z0), ), t, dtype=torch.long)
        pred = torch.cat([unet(x, s, c).sample for x, s, c in zip(
            scheduler.add_noise(z0, noise, tt).split(8), tt.split(8), context.split(8))])
        out[str(t)] = float(F.mse_loss(pred, noise))
    return out


# --------------------------------------------------------------------------- the folder
def save_sd_folder(folder, vae, unet, text_encoder, tokenizer, scheduler):
    """Save the parts as a Stable Diffusion pipeline folder (diffusers' own layout and
    ``model_index.json``; safetensors weights)."""
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)


def folder_files(folder):
    """SHA-256 of every file of a folder except the manifest (relative path -> digest)."""
    out = {}
    for base, _, names in os.walk(folder):
        for name in names:
            path = osp.join(base, name)
            rel = osp.relpath(path, folder).replace(os.sep, '/')
            if rel != MANIFEST_NAME:
                out[rel] = file_sha256(path)
    return dict(sorted(out.items()))


def read_tiny_sd_manifest(out_dir):
    """The folder's manifest, or None when it has no readable one of this format."""
    try:
        with open(osp.join(out_dir, MANIFEST_NAME), encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and \
        manifest.get('format') == MANIFEST_FORMAT else None


def _differences(old, new, prefix=''):
    """Dotted names of the entries of two JSON dicts that differ."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f'{prefix}{k}.')
        elif a != b:
            out.append(prefix + k)
    return out


def tiny_sd_status(out_dir, key, parts):
    """Why ``out_dir`` is not the pretrained folder of ``key``, or None when it is.

    Returns:
        str | None: ``'absent'``; ``'made with other ... (settings.vae.steps, data_sha256)'``;
        ``'its files changed since it was written (...)'``.

    Raises:
        TinySDError: ``out_dir`` holds something else (no manifest of this tool): it is never
            overwritten.
    """
    if not osp.exists(out_dir) or (osp.isdir(out_dir) and not os.listdir(out_dir)):
        return 'absent'
    manifest = read_tiny_sd_manifest(out_dir)
    if manifest is None:
        raise TinySDError(f'{out_dir} exists but has no {MANIFEST_NAME} of '
                          'tools/pretrain_tiny_sd.py (not a folder it made, or an older one): '
                          'pass another --out, or delete the folder to rebuild it there')
    if manifest.get('key') != key:
        changed = _differences(manifest.get('key_parts') or {}, parts) or ['key']
        return f'it was made with other inputs (changed: {", ".join(changed)})'
    changed = _differences(manifest.get('files') or {}, folder_files(out_dir))
    if changed:
        return f'its files changed since it was written ({", ".join(changed[:3])})'
    return None


@contextlib.contextmanager
def _torch_threads(threads):
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def pretrain_tiny_sd(data_root, out_dir, settings, key, parts, log=print):
    """Run both stages and write the folder (replacing ``out_dir`` only once all is written).

    Args:
        data_root (str): Demo dataset root (train split for training, val for the numbers).
        out_dir (str): Destination folder.
        settings (dict): :func:`pretrain_settings`.
        key (str): :func:`pretrain_key` of these inputs, and its ``parts``.
        log (callable): Receives progress lines.

    Returns:
        dict: The manifest written.
    """
    files = data_files(data_root)
    train_images, train_labels = load_split(files['train'])
    val_images, val_labels = load_split(files['val'])
    configs, seed = settings['configs'], settings['seed']
    metrics = dict(threads=torch.get_num_threads())
    start = time.time()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = build_vae(config=configs['vae'])
        unet = build_unet(config=configs['unet'])
        text_encoder, tokenizer = build_text_encoder(config=configs['text_encoder'])
    text_encoder.requires_grad_(False).eval()
    generator = torch.Generator().manual_seed(seed)

    metrics['vae_psnr_val_init'] = vae_psnr(vae.eval(), val_images)
    metrics['vae_mse_curve'] = train_vae(vae, train_images, settings['vae'], generator, log)
    metrics['vae_psnr_val'] = vae_psnr(vae, val_images)
    metrics['vae_seconds'] = round(time.time() - start, 1)
    log(f'[tiny_sd] vae: PSNR on the {len(val_images)} clean val images '
        f'{metrics["vae_psnr_val"]:.2f} dB (random init {metrics["vae_psnr_val_init"]:.2f} dB), '
        f'{metrics["vae_seconds"]} s')
    train_latents = latent_moments(vae, train_images)
    scale = latent_scaling_factor(*train_latents, generator)
    vae.register_to_config(scaling_factor=scale)
    metrics['scaling_factor'] = scale
    log(f'[tiny_sd] latent scaling factor 1/std = {scale:.5f} (SD2.1-base: 0.18215)')

    start = time.time()
    scheduler = build_scheduler()
    captions = CaptionEncoder(text_encoder, tokenizer,
                              resolve_class_names('DemoCityscapesDataset', 'pretrain_tiny_sd'))
    val_latents = (*latent_moments(vae, val_images), scale)
    metrics['val_denoising_loss_init'] = denoising_loss(unet.eval(), val_latents, val_labels,
                                                        captions, scheduler, seed)
    metrics['unet_loss_curve'] = train_unet(unet, (*train_latents, scale), train_labels,
                                            captions, scheduler, settings['unet'], generator, log)
    metrics['val_denoising_loss'] = denoising_loss(unet, val_latents, val_labels, captions,
                                                   scheduler, seed)
    metrics['val_denoising_loss_empty_prompt'] = denoising_loss(
        unet, val_latents, val_labels, captions, scheduler, seed, empty_prompt=True)
    metrics['unet_seconds'] = round(time.time() - start, 1)
    losses = [' / '.join(f'{v:.4f}' for v in metrics[k].values()) for k in (
        'val_denoising_loss', 'val_denoising_loss_empty_prompt', 'val_denoising_loss_init')]
    log(f'[tiny_sd] unet: val ε-MSE at t = {", ".join(map(str, EVAL_TIMESTEPS))}: {losses[0]} '
        f'(empty prompt {losses[1]}; random init {losses[2]}), {metrics["unet_seconds"]} s')
    manifest = _write_folder(out_dir, dict(key=key, key_parts=parts, metrics=metrics),
                             (vae, unet, text_encoder, tokenizer, scheduler))
    log(f'[tiny_sd] wrote {out_dir} (key {key[:12]})')
    return manifest


def _write_folder(out_dir, record, parts):
    """Save the parts and the manifest into a sibling folder, then put it in place of
    ``out_dir`` (an interrupted run leaves ``out_dir`` as it was)."""
    import diffusers
    import transformers
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = f'{osp.abspath(out_dir)}.building{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_sd_folder(tmp, *parts)
        manifest = dict(format=MANIFEST_FORMAT, **record,
                        versions=dict(torch=torch.__version__, diffusers=diffusers.__version__,
                                      transformers=transformers.__version__),
                        files=folder_files(tmp))
        dump_json(manifest, osp.join(tmp, MANIFEST_NAME))
        if osp.exists(out_dir):
            old = f'{osp.abspath(out_dir)}.old{os.getpid()}'
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def ensure_tiny_sd(data_root='data/demo_cityscapes', out_dir=DEFAULT_OUT, arch='small', seed=0,
                   vae=None, unet=None, threads=None, log=print):
    """The pretrained tiny SD folder of these inputs: reused when its manifest has the same
    content key and its files are intact, else (re)built.

    Args:
        data_root (str): Demo dataset root (``tools/make_demo_data.py``).
        out_dir (str): The folder (a ``pretrained_model_path``). Default ``data/tiny_sd``.
        arch (str | dict): :data:`~mmseg_rass.models.diffusion.ARCHS` name or part configs.
        seed (int): Seed of the initialisation, the text encoder and every draw.
        vae (dict, optional): Overrides of :data:`VAE_DEFAULTS`.
        unet (dict, optional): Overrides of :data:`UNET_DEFAULTS`.
        threads (int, optional): torch intra-op threads while training (default: unchanged).
        log (callable): Receives progress lines. Default ``print``.

    Returns:
        tuple[dict, str | None]: The folder's manifest, and why it was built (None: reused).
    """
    settings = pretrain_settings(arch, seed, vae, unet)
    key, parts = pretrain_key(data_root, settings)
    reason = tiny_sd_status(out_dir, key, parts)
    if reason is None:
        log(f'[tiny_sd] {out_dir} is up to date (key {key[:12]}): reused')
        return read_tiny_sd_manifest(out_dir), None
    log(f'[tiny_sd] building {out_dir} (key {key[:12]}): {reason}')
    with _torch_threads(threads):
        return pretrain_tiny_sd(data_root, out_dir, settings, key, parts, log), reason
