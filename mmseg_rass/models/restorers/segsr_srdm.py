"""SegSR's super-resolution diffusion model (SRDM): an SD UNet denoising the HQ latent."""
import json

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ...lora import UNET_LORA_TARGETS, make_lora_config
from ..diffusion import (build_scheduler, build_text_encoder, build_unet, build_vae,
                         resolve_arch, x0_from_output)
from ..trainable_state import save_trainable_only

FINETUNE_MODES = ('lora', 'full')


def _widen_conv_in(conv, extra_channels):
    """``conv`` with ``extra_channels`` more input channels, their weights zero.

    The new layer is made without touching the random number generator (``skip_init``), so a
    model built with a different width draws the same random numbers afterwards.
    """
    wide = nn.utils.skip_init(
        nn.Conv2d, conv.in_channels + extra_channels, conv.out_channels, conv.kernel_size,
        stride=conv.stride, padding=conv.padding, device=conv.weight.device,
        dtype=conv.weight.dtype)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, :conv.in_channels] = conv.weight
        wide.bias.copy_(conv.bias)
    return wide


@MODELS.register_module()
class SRDM(BaseModule):
    """SegSR's super-resolution diffusion: SD VAE + UNet, LQ latent concatenated at ``conv_in``.

    The UNet input is ``cat(z_t, z_lq, c)``: the noisy HQ latent, the LQ latent (VAE mean ×
    scaling factor) and, with ``cond_channels > 0``, the segmentation condition ``c`` from the
    Dual-Modality Bridge at latent resolution. ``conv_in`` is widened for the extra channels
    with zero weights (as diffusers' inpainting UNet), so at initialisation the model is exactly
    the pretrained UNet. The text context is one fixed prompt (default empty), encoded once;
    the text encoder is not kept. Training follows the SD scheduler (1000 DDPM steps, its
    prediction type); sampling uses any diffusers scheduler (``sampler``).

    Trainable: ``finetune='lora'`` — a peft LoRA on the UNet (``conv_in`` excluded) plus the
    whole widened ``conv_in``; ``finetune='full'`` — the whole UNet. The VAE is frozen and in
    eval mode, unless ``train_vae=True``: a random VAE (the tiny demo's) cannot reconstruct
    images at all, so it is then trained as a plain autoencoder (:meth:`reconstruction_loss`)
    while the diffusion losses see detached latents. ``state_dict()`` holds only the trainable
    tensors (the frozen part comes from ``pretrained_model_path`` or is rebuilt from ``arch``
    and ``init_seed``).

    Args:
        pretrained_model_path (str, optional): Local SD2.1-base folder (diffusers layout).
        arch (str | dict, optional): Random weights instead: ``'tiny'``, ``'sd21'`` or
            ``dict(unet=, vae=, text_encoder=)`` (:func:`mmseg_rass.models.diffusion.resolve_arch`).
        init_seed (int): Seed of every random initialisation here (configs, LoRA).
        scheduler_path (str, optional): Folder with ``scheduler/``; default the SD folder, or
            SD's training schedule for random architectures.
        cond_channels (int): Channels of the bridge condition; 0 = no condition input.
        finetune (str): ``'lora'`` or ``'full'``.
        lora_rank (int): LoRA rank (``finetune='lora'``). Default 4.
        lora_targets (list[str], optional): LoRA target suffixes; default the project's UNet
            list without ``conv_in`` (trained fully).
        lora_init (str | bool): peft ``init_lora_weights``. Default ``'gaussian'``.
        prompt (str): The fixed text prompt. Default ``''``.
        sampler (dict): Diffusers scheduler for sampling: ``type`` (class name, e.g.
            ``'DDIMScheduler'``, ``'DPMSolverMultistepScheduler'``) and overrides of the SD
            scheduler config. Default DDIM with ``timestep_spacing='trailing'`` (first step at
            t = 999 for any step count).
        init_latent (str): Start of sampling: ``'noise'`` (pure noise) or ``'lq'`` (the LQ
            latent noised to the first timestep, as SeeSR). Default ``'noise'``.
        gradient_checkpointing (bool): UNet gradient checkpointing.
        train_vae (bool): Train the VAE by reconstruction (for random-weight VAEs; SD's VAE
            stays frozen). Default False.
        init_cfg (dict, optional): Unused by the SD parts.
    """

    def __init__(self,
                 pretrained_model_path=None,
                 arch=None,
                 init_seed=0,
                 scheduler_path=None,
                 cond_channels=0,
                 finetune='lora',
                 lora_rank=4,
                 lora_targets=None,
                 lora_init='gaussian',
                 prompt='',
                 sampler=dict(type='DDIMScheduler', timestep_spacing='trailing'),
                 init_latent='noise',
                 gradient_checkpointing=False,
                 train_vae=False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        configs = resolve_arch('SRDM', pretrained_model_path, arch)
        if finetune not in FINETUNE_MODES:
            raise ValueError(f'SRDM: finetune must be one of {FINETUNE_MODES}, got {finetune!r}')
        if init_latent not in ('noise', 'lq'):
            raise ValueError(f'SRDM: init_latent must be "noise" or "lq", got {init_latent!r}')
        self.cond_channels = int(cond_channels)
        self.finetune = finetune
        self.init_latent = init_latent
        self.train_vae = bool(train_vae)
        self.scheduler = build_scheduler(scheduler_path or pretrained_model_path)
        self.sampler_cfg = dict(sampler)
        self.make_sampler(1)  # an unknown or unsuitable sampler fails here, before the SD parts
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)  # random parts rebuild identically from the config
            self.vae = build_vae(pretrained_model_path, configs.get('vae')).requires_grad_(False)
            text_encoder, tokenizer = build_text_encoder(pretrained_model_path,
                                                         configs.get('text_encoder'))
            text = self._encode_prompt(text_encoder, tokenizer, prompt)
            self.register_buffer('text_embeds', text, persistent=False)
            del text_encoder, tokenizer
            unet = build_unet(pretrained_model_path, configs.get('unet'))
            self.latent_channels = unet.config.in_channels
            unet.conv_in = _widen_conv_in(unet.conv_in, self.latent_channels + self.cond_channels)
            unet.register_to_config(in_channels=unet.conv_in.in_channels)
            if finetune == 'lora':
                unet.requires_grad_(False)
                targets = lora_targets or [t for t in UNET_LORA_TARGETS if t != 'conv_in']
                self.lora_config = make_lora_config(lora_rank, targets, lora_init)
                unet.add_adapter(self.lora_config)
                unet.conv_in.requires_grad_(True)
            else:
                self.lora_config = None
                unet.requires_grad_(True)
        self.unet = unet
        self.vae.requires_grad_(self.train_vae)
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.latent_scale = self.vae.config.scaling_factor
        self.size_divisor = (2**(len(self.vae.config.block_out_channels) - 1) *
                             2**(len(self.unet.config.block_out_channels) - 1))
        base = dict(pretrained_model_path=pretrained_model_path,
                    arch=arch if isinstance(arch, str) or arch is None else
                    json.dumps(arch, sort_keys=True),
                    init_seed=None if pretrained_model_path else init_seed)
        save_trainable_only(self, base)

    @staticmethod
    @torch.no_grad()
    def _encode_prompt(text_encoder, tokenizer, prompt):
        ids = tokenizer([prompt], padding='max_length', max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors='pt').input_ids
        device = next(text_encoder.parameters()).device
        return text_encoder(input_ids=ids.to(device)).last_hidden_state.float()

    @staticmethod
    def _sampler_class(cfg):
        import diffusers
        name = cfg.get('type')
        cls = getattr(diffusers, str(name), None)
        if cls is None or not hasattr(cls, 'set_timesteps'):
            raise ValueError(f'SRDM: sampler type {name!r} is not a diffusers scheduler class '
                             '(e.g. DDIMScheduler, DPMSolverMultistepScheduler)')
        return cls

    def init_weights(self):
        """Keep the SD parts as built (no mmengine re-initialisation)."""
        self._is_init = True

    def train(self, mode=True):
        """The frozen VAE stays in eval mode."""
        super().train(mode)
        if not self.train_vae:
            self.vae.eval()
        return self

    @property
    def num_train_timesteps(self):
        """Length of the training schedule T (1000 for SD)."""
        return self.scheduler.config.num_train_timesteps

    # ----------------------------------------------------------------- latents
    @torch.no_grad()
    def encode(self, img):
        """Images (B, 3, H, W) in [-1, 1], H, W multiples of 8 → latents (B, 4, H/8, W/8)."""
        return self.vae.encode(img).latent_dist.mode() * self.latent_scale

    def decode(self, latent):
        """Latents (B, 4, h, w) → images (B, 3, 8h, 8w) in [-1, 1]."""
        return self.vae.decode(latent / self.latent_scale).sample.clamp(-1, 1)

    def reconstruction_loss(self, img):
        """Autoencoder MSE of images (B, 3, H, W) in [-1, 1] (``train_vae=True`` only)."""
        if not self.train_vae:
            raise RuntimeError('SRDM.reconstruction_loss needs train_vae=True')
        recon = self.vae.decode(self.vae.encode(img).latent_dist.mode()).sample
        return F.mse_loss(recon, img)

    # ----------------------------------------------------------------- denoiser
    def forward(self, noisy_latent, timesteps, lq_latent, cond=None):
        """UNet output (ε, v or x0 as the scheduler's prediction type).

        Args:
            noisy_latent (Tensor): z_t (B, 4, h, w).
            timesteps (Tensor): (B,) integer timesteps in [0, T).
            lq_latent (Tensor): z_lq (B, 4, h, w).
            cond (Tensor, optional): Bridge condition (B, cond_channels, h, w); required iff
                ``cond_channels > 0``.

        Returns:
            Tensor: (B, 4, h, w).
        """
        if (cond is None) != (self.cond_channels == 0):
            raise ValueError(f'SRDM: built with cond_channels={self.cond_channels}, so the '
                             f'condition must be {"given" if self.cond_channels else "None"}')
        parts = [noisy_latent, lq_latent] + ([cond] if cond is not None else [])
        context = self.text_embeds.expand(noisy_latent.shape[0], -1, -1)
        return self.unet(torch.cat(parts, dim=1), timesteps,
                         encoder_hidden_states=context.to(noisy_latent.dtype)).sample

    def _alpha(self, timesteps, like):
        alpha = self.scheduler.alphas_cumprod.to(like.device)[timesteps]
        return alpha.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, latent, noise, timesteps):
        """z_t = √ᾱ_t·z0 + √(1−ᾱ_t)·ε."""
        alpha = self._alpha(timesteps, latent)
        return alpha.sqrt() * latent + (1 - alpha).sqrt() * noise

    def predict_x0(self, model_output, noisy_latent, timesteps):
        """Clean-latent estimate ẑ0 from the UNet output at ``timesteps`` (B,)."""
        return x0_from_output(self.scheduler.config.prediction_type, model_output,
                              noisy_latent, self._alpha(timesteps, noisy_latent), 'SRDM')

    def loss(self, model_output, latent, noise, timesteps):
        """Denoising MSE against the scheduler's target (ε, v or z0)."""
        kind = self.scheduler.config.prediction_type
        if kind == 'epsilon':
            target = noise
        elif kind == 'v_prediction':
            alpha = self._alpha(timesteps, latent)
            target = alpha.sqrt() * noise - (1 - alpha).sqrt() * latent
        elif kind == 'sample':
            target = latent
        else:
            raise ValueError(f'SRDM: scheduler prediction_type {kind!r} is not supported')
        return F.mse_loss(model_output.float(), target.float())

    # ----------------------------------------------------------------- sampling
    def make_sampler(self, num_steps, device=None):
        """A fresh sampling scheduler (``sampler`` config) with ``num_steps`` timesteps set."""
        cfg = dict(self.sampler_cfg)
        cls = self._sampler_class(cfg)
        cfg.pop('type')
        sampler = cls.from_config(self.scheduler.config, **cfg)
        if float(sampler.init_noise_sigma) != 1.0:
            raise ValueError(f'SRDM: sampler {cls.__name__} works on sigma-scaled latents; use a '
                             'variance-preserving one (DDIMScheduler, DPMSolverMultistepScheduler, '
                             'UniPCMultistepScheduler, DDPMScheduler, ...)')
        sampler.set_timesteps(int(num_steps), device=device)
        return sampler

    def initial_latent(self, sampler, lq_latent, noise):
        """z_T: ``noise``, or the LQ latent noised to the sampler's first timestep."""
        if self.init_latent == 'lq':
            first = sampler.timesteps[:1].repeat(lq_latent.shape[0]).to(lq_latent.device)
            return self.add_noise(lq_latent, noise, first)
        return noise

    @torch.no_grad()
    def sample(self, lq_latent, num_steps, noise, cond=None):
        """Restore alone (no bridge): the reverse process from z_T to z_0.

        Args:
            lq_latent (Tensor): (B, 4, h, w).
            num_steps (int): Sampler steps.
            noise (Tensor): Starting noise (B, 4, h, w) (seed it for reproducible outputs).
            cond (Tensor, optional): A fixed condition for every step (``cond_channels > 0``).

        Returns:
            Tensor: The final latent z_0 (B, 4, h, w).
        """
        sampler = self.make_sampler(num_steps, lq_latent.device)
        latent = self.initial_latent(sampler, lq_latent, noise)
        for t in sampler.timesteps:
            steps = t.repeat(latent.shape[0]).to(latent.device)
            out = self(latent, steps, lq_latent, cond)
            latent = sampler.step(out, t, latent).prev_sample
        return latent
