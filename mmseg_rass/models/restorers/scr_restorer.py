"""SCR: the semantic-constrained one-step diffusion restorer (first half of RASS)."""
import copy

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from mmseg.registry import MODELS

from ...lora import (REFERENCE_LORA_ALPHA, UNET_LORA_TARGETS, load_scr_lora, load_scr_lora_into,
                     make_lora_config, save_scr_lora, vae_encoder_lora_targets)
from ..diffusion import (build_scheduler, build_text_encoder, build_unet, build_vae,
                         evaluation_generator, posterior_latent, resolve_arch, x0_from_output)
from ..prompts import PromptConditioner, build_prompt_source, resolve_class_names
from ..trainable_state import save_trainable_only
from .lpips_net import load_lpips
from .scr_attention import AttentionStore, set_scr_attn_processors
from .scr_data_preprocessor import to_uint8_range

# OSEDiff's negative prompt for the VSD classifier-free guidance (scripts/train/train_osediff.sh).
OSEDIFF_NEG_PROMPT = ('painting, oil painting, illustration, drawing, art, sketch, cartoon, '
                      'CG Style, 3D render, unreal engine, blurring, dirty, messy, worst quality, '
                      'low quality, frames, watermark, signature, jpeg artifacts, deformed, '
                      'lowres, over-smooth')


@MODELS.register_module()
class SCRRestorer(BaseModel):
    """One-step Stable Diffusion restorer with a LoRA UNet and the L_SCL attention loss.

    ``z = VAE.enc(LQ)·s`` → ``ε = UNet(z, t, text)`` → ``ẑ0 = (z − √(1−ᾱ_t)·ε)/√ᾱ_t`` (one DDPM
    step to t = 0; v- and sample-prediction schedulers handled) → ``VAE.dec(ẑ0 / s)``, with
    s = ``vae.config.scaling_factor`` (0.18215) and t = 999 as in OSEDiff. The training text
    names the classes present in the GT (``"road, car, traffic light"``), so that L_SCL can pull
    each class's cross-attention onto its mask. Trainable: the UNet LoRA, ``conv_in`` and (as in
    OSEDiff) a VAE-encoder LoRA; everything else is frozen, and ``state_dict()`` (hence every
    checkpoint) holds only the trainable tensors — the frozen parts always come from
    ``pretrained_model_path`` / configs
    (:func:`~mmseg_rass.models.trainable_state.save_trainable_only`).

    Losses (each logged on its own): pixel MSE ×1 and LPIPS(VGG) ×2 (OSEDiff's restoration
    loss), L_SCL, and optionally OSEDiff's VSD (``vsd``).

    Args:
        pretrained_model_path (str, optional): Local SD2.1-base folder (diffusers layout).
        arch (str | dict, optional): Instead of the folder, random weights of an architecture:
            ``'tiny'``, ``'sd21'`` or ``dict(unet=..., vae=..., text_encoder=...)`` of constructor
            arguments (see :func:`~mmseg_rass.models.diffusion.resolve_arch`).
        init_seed (int): Seed of every random initialisation (weights built from configs, the
            fresh LoRA), so that a model rebuilt from its config has the same frozen part; also
            the seed of the posterior noise at evaluation.
        scheduler_path (str, optional): Folder with ``scheduler/``; default: the SD folder, or
            SD's training schedule when built from configs.
        timestep (int): The single UNet timestep. Default 999 (OSEDiff).
        lora_rank (int): LoRA rank. Default 4.
        lora_alpha (float): LoRA alpha (scale alpha / rank). Default 8 (peft's default, used
            by OSEDiff / RASS: scale 2).
        lora_targets (list[str]): UNet module suffixes to adapt. Default the design's list.
        lora_init (str): peft ``init_lora_weights``. Default ``'gaussian'``.
        vae_lora_rank (int, optional): Rank of OSEDiff's VAE-encoder LoRA (its encoder convs,
            attention projections and ``quant_conv``); None trains no VAE LoRA. Default 4.
        scr_lora (str, optional): Start from this SCR LoRA file instead of fresh adapters (its
            configs decide the adapters, including whether there is a VAE LoRA).
        class_names (Sequence[str] | str, optional): Dataset class names, or a dataset type
            (``'CityscapesDataset'``) to take them from; when None ``SCRDatasetMetaHook`` sets
            them from the dataset metainfo.
        prompt (str | dict): Training prompt source (:mod:`mmseg_rass.models.prompts`).
            Default ``'gt'`` (the GT class names, which L_SCL needs).
        test_prompt (str | dict): Validation/test prompt source. Default ``'class_names'``
            (all dataset classes: no label is used); ``'gt'`` is an oracle and is logged as such.
        prompt_cache_dir (str, optional): Folder for precomputed prompt embeddings (tags).
        pixel_loss (str): ``'mse'`` or ``'l1'``. pixel_weight (float): its weight (1.0).
        lpips_weight (float): LPIPS weight. Default 2.0 (OSEDiff); 0 trains without LPIPS.
        lpips_path (str, optional): Backbone weights of LPIPS (torchvision's
            ``vgg16-397923af.pth``, see ``docs/scr.md``); required when ``lpips_weight > 0``.
        lpips_net (str): ``'vgg'`` (OSEDiff) or ``'alex'``.
        vsd (dict, optional): OSEDiff's variational score distillation (opt-in): ``weight``
            (1.0), ``lora_weight`` (1.0, the diffusion loss of the VSD LoRA), ``cfg_scale``
            (7.5), ``neg_prompt`` (OSEDiff's), ``lora_rank`` (4), ``t_range`` ((20, 980)).
        scl_loss (dict, optional): ``SCLLoss`` config; None disables L_SCL.
        attn_strides (tuple[int]): Latent-relative strides whose cross-attention maps L_SCL uses
            (1, 2, 4, 8 = 64², 32², 16², 8² at 512²).
        sample_posterior (bool): Sample the VAE posterior (OSEDiff) instead of taking its mean;
            at evaluation the noise is seeded with ``init_seed`` (repeatable). Default True.
        gradient_checkpointing (bool): UNet gradient checkpointing. Default False.
        save_attention (bool): In predict mode, attach per-class cross-attention maps
            (``attn_maps`` (K, h, w), ``attn_classes``) to the outputs. Default False.
        data_preprocessor (dict): Default ``SCRDataPreprocessor``.
        init_cfg (dict, optional): Unused by the SD parts; for BaseModel.
    """

    def __init__(self,
                 pretrained_model_path=None,
                 arch=None,
                 init_seed=0,
                 scheduler_path=None,
                 timestep=999,
                 lora_rank=4,
                 lora_alpha=REFERENCE_LORA_ALPHA,
                 lora_targets=UNET_LORA_TARGETS,
                 lora_init='gaussian',
                 vae_lora_rank=4,
                 scr_lora=None,
                 class_names=None,
                 prompt='gt',
                 test_prompt='class_names',
                 prompt_cache_dir=None,
                 pixel_loss='mse',
                 pixel_weight=1.0,
                 lpips_weight=2.0,
                 lpips_path=None,
                 lpips_net='vgg',
                 vsd=None,
                 scl_loss=dict(type='SCLLoss'),
                 attn_strides=(1, 2, 4, 8),
                 sample_posterior=True,
                 gradient_checkpointing=False,
                 save_attention=False,
                 data_preprocessor=dict(type='SCRDataPreprocessor'),
                 init_cfg=None):
        if isinstance(data_preprocessor, dict):  # mmseg's registry, whatever the default scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        path = pretrained_model_path
        configs = resolve_arch('SCRRestorer', path, arch)
        if pixel_loss not in ('mse', 'l1'):
            raise ValueError(f'SCRRestorer: pixel_loss must be "mse" or "l1", got {pixel_loss!r}')
        if lpips_weight and lpips_path is None:
            raise ValueError(
                f'SCRRestorer: lpips_weight={lpips_weight} asks for the LPIPS loss (OSEDiff\'s '
                'restoration loss is MSE + 2·LPIPS) but lpips_path is None: set lpips_path to '
                'torchvision\'s vgg16-397923af.pth (how to get it: docs/scr.md), or '
                'lpips_weight=0 to train without LPIPS (a departure from the reference)')
        self.lpips = load_lpips(lpips_path, lpips_net) if lpips_weight else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)  # random parts (configs, LoRA) rebuild identically
            self.vae = build_vae(path, configs.get('vae')).requires_grad_(False)
            self.text_encoder, self.tokenizer = build_text_encoder(path,
                                                                   configs.get('text_encoder'))
            self.text_encoder.requires_grad_(False)
            self.scheduler = build_scheduler(scheduler_path or pretrained_model_path)
            unet = build_unet(path, configs.get('unet')).requires_grad_(False)
            base_unet = copy.deepcopy(unet) if vsd is not None else None
            self.vae_lora_config, self.vsd = None, None
            if scr_lora is not None:
                scr = load_scr_lora(scr_lora)
                self.lora_config, self.vae_lora_config = scr.lora_config, scr.vae_lora_config
                self.unet = load_scr_lora_into(unet, scr, vae=self.vae, source=str(scr_lora))
            else:
                self.lora_config = make_lora_config(lora_rank, lora_targets, lora_init, lora_alpha)
                unet.add_adapter(self.lora_config)
                self.unet = unet
                if vae_lora_rank:
                    self.vae_lora_config = make_lora_config(
                        vae_lora_rank, vae_encoder_lora_targets(self.vae), lora_init, lora_alpha)
                    self.vae.add_adapter(self.vae_lora_config)
            if vsd is not None:
                self._build_vsd(base_unet, vsd, lora_init, lora_alpha)
        conv_in = getattr(self.unet.conv_in, 'base_layer', self.unet.conv_in)
        conv_in.requires_grad_(True)
        for name, param in self.vae.named_parameters():
            param.requires_grad = '.lora_' in name
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.attn_store = AttentionStore(attn_strides)
        set_scr_attn_processors(self.unet, self.attn_store)

        self.init_seed = init_seed
        self.timestep = int(timestep)
        self.sample_posterior = sample_posterior
        self.class_names = None
        self.prompts = PromptConditioner(
            self.text_encoder, self.tokenizer,
            dict(train=build_prompt_source(prompt, 'SCRRestorer'),
                 test=build_prompt_source(test_prompt, 'SCRRestorer')),
            cache_dir=prompt_cache_dir, owner='SCRRestorer')
        self._oracle_logged = False
        if class_names is not None:
            self.set_class_names(class_names)
        elif not any(s.needs_class_names for s in self.prompts.sources.values()):
            self.prompts.prepare()
        self.pixel_loss = pixel_loss
        self.pixel_weight = pixel_weight
        self.lpips_weight = lpips_weight
        self.scl_loss = MODELS.build(scl_loss) if scl_loss is not None else None
        self.save_attention = save_attention
        save_trainable_only(self, dict(pretrained_model_path=path, arch=arch, scr_lora=scr_lora,
                                       init_seed=None if path else init_seed))

    def _build_vsd(self, base_unet, vsd, lora_init, lora_alpha):
        """OSEDiff's regulariser: a frozen SD UNet (adapters off) and its trained VSD LoRA."""
        known = {'weight', 'lora_weight', 'cfg_scale', 'neg_prompt', 'lora_rank', 't_range'}
        if set(vsd) - known:
            raise ValueError(f'SCRRestorer: unknown vsd options {sorted(set(vsd) - known)}; '
                             f'known: {sorted(known)}')
        self.vsd = dict(weight=1.0, lora_weight=1.0, cfg_scale=7.5, neg_prompt=OSEDIFF_NEG_PROMPT,
                        lora_rank=4, t_range=(20, 980))
        self.vsd.update(vsd)
        # OSEDiff's regulariser adapts conv_out too.
        base_unet.add_adapter(make_lora_config(self.vsd['lora_rank'],
                                               UNET_LORA_TARGETS + ['conv_out'], lora_init,
                                               lora_alpha), adapter_name='vsd')
        for name, param in base_unet.named_parameters():
            param.requires_grad = '.lora_' in name
        self.vsd_unet = base_unet

    def init_weights(self):
        """Keep the SD parts as built: mmengine's recursive init would re-initialise the CLIP
        text encoder (transformers models define ``init_weights``)."""
        self._is_init = True

    def train(self, mode=True):
        """Frozen parts (VAE, text encoder, LPIPS) stay in eval mode."""
        super().train(mode)
        for frozen in (self.vae, self.text_encoder, self.lpips):
            if frozen is not None:
                frozen.eval()
        self._oracle_logged = False
        return self

    def save_lora(self, path):
        """Write the trained adapters (UNet LoRA + ``conv_in``, VAE-encoder LoRA) to an SCR
        LoRA file (:func:`mmseg_rass.lora.save_scr_lora`)."""
        with_vae = self.vae_lora_config is not None
        save_scr_lora(path, self.unet, self.lora_config, vae=self.vae if with_vae else None,
                      vae_lora_config=self.vae_lora_config)

    # ----------------------------------------------------------------- generation
    def set_class_names(self, class_names):
        """Dataset class names used to build prompts (and encode the fixed ones).

        Args:
            class_names (Sequence[str] | str): The names, or a registered dataset type (e.g.
                ``'CityscapesDataset'``) whose ``METAINFO['classes']`` are used.
        """
        self.class_names = resolve_class_names(class_names, 'SCRRestorer')
        self.prompts.class_names = self.class_names
        self.prompts.prepare()

    def encode_prompts(self, data_samples, training):
        """Text embeddings (B, 77, C) and per-image class token positions."""
        use = 'train' if training else 'test'
        source = self.prompts.sources[use]
        if source.needs_class_names and self.class_names is None:
            raise ValueError('SCRRestorer needs the dataset class names to build prompts: '
                             'set model.class_names or add '
                             "custom_hooks=[dict(type='SCRDatasetMetaHook')]")
        if source.oracle and not training and not self._oracle_logged:
            print_log(f'SCRRestorer: the {use} prompt is {source.describe()!r}, made from the GT '
                      'labels: these restoration results are ORACLE numbers', logger='current',
                      level=30)
            self._oracle_logged = True
        return self.prompts(use, data_samples, self.vae.device)

    def encode_latent(self, images):
        """VAE latent (B, 4, H/8, W/8) × scaling factor of images (B, 3, H, W) in [-1, 1]."""
        moments = self.vae.encode(images).latent_dist.parameters
        generator = None if self.training else evaluation_generator(images.device, self.init_seed)
        return posterior_latent(moments, self.sample_posterior, generator) * \
            self.vae.config.scaling_factor

    def generate(self, lq, text, record=False):
        """One-step restoration, returning the clean latent too.

        Args:
            lq (Tensor): LQ images (B, 3, H, W) in [-1, 1], H and W multiples of 8.
            text (Tensor): Text embeddings (B, L, C).
            record (bool): Record cross-attention probabilities into ``self.attn_store``.

        Returns:
            tuple[Tensor, Tensor]: Restored images (B, 3, H, W) in [-1, 1] and the predicted
            clean latent (B, 4, H/8, W/8) (scaled).
        """
        latent = self.encode_latent(lq)
        self.attn_store.reset(tuple(latent.shape[-2:]), recording=record)
        t = torch.full((lq.shape[0], ), self.timestep, device=lq.device, dtype=torch.long)
        pred = self.unet(latent, t, encoder_hidden_states=text.to(latent.dtype)).sample
        latent0 = self.predict_x0(pred, latent, t)
        image = self.vae.decode(latent0 / self.vae.config.scaling_factor).sample.clamp(-1, 1)
        return image, latent0

    def restore(self, lq, text, record=False):
        """One-step restoration: restored images (B, 3, H, W) in [-1, 1] (see :meth:`generate`)."""
        return self.generate(lq, text, record)[0]

    def predict_x0(self, model_output, latent, t):
        """The scheduler step from timestep ``t`` (B, ) straight to t = 0 (clean latent)."""
        alpha = self.scheduler.alphas_cumprod.to(latent)[t].view(-1, 1, 1, 1)
        return x0_from_output(self.scheduler.config.prediction_type, model_output, latent, alpha,
                              'SCRRestorer')

    def attention_maps(self):
        """Recorded probabilities as a list of (B, heads, h, w, L), one per layer."""
        maps = []
        for stride, layers in sorted(self.attn_store.maps.items()):
            h, w = self.attn_store.spatial_size(stride)
            maps += [p.reshape(*p.shape[:2], h, w, p.shape[-1]) for p in layers]
        return maps

    # ----------------------------------------------------------------- VSD (OSEDiff)
    def vsd_loss(self, latent0, text):
        """OSEDiff's distribution-matching (VSD) loss of the generated clean latents.

        t ~ U[t_min, t_max); z_t = add_noise(ẑ0, ε, t); x0 predictions of the VSD-LoRA UNet
        and of the frozen SD UNet with classifier-free guidance (negative prompt, scale
        ``cfg_scale``) give ``grad = (x0_lora − x0_sd) / mean|ẑ0 − x0_sd|`` and the loss
        ``mse(ẑ0, sg(ẑ0 − grad))``, whose gradient on ẑ0 is proportional to ``grad``.

        Args:
            latent0 (Tensor): Generated clean latents (B, 4, h, w) (with gradient).
            text (Tensor): Their prompt embeddings (B, L, C).
        """
        b = latent0.shape[0]
        t = torch.randint(*self.vsd['t_range'], (b, ), device=latent0.device)
        noisy = self.scheduler.add_noise(latent0, torch.randn_like(latent0), t)
        neg = self.prompts.encode_text(self.vsd['neg_prompt']).to(text).expand_as(text)
        with torch.no_grad():
            x0_lora = self.predict_x0(
                self.vsd_unet(noisy.detach(), t, encoder_hidden_states=text).sample, noisy, t)
            self.vsd_unet.disable_adapters()
            try:
                uncond, cond = self.vsd_unet(
                    torch.cat([noisy.detach()] * 2), torch.cat([t, t]),
                    encoder_hidden_states=torch.cat([neg, text])).sample.chunk(2)
            finally:
                self.vsd_unet.enable_adapters()
            eps = uncond + self.vsd['cfg_scale'] * (cond - uncond)
            x0_sd = self.predict_x0(eps, noisy, t)
            weight = (latent0 - x0_sd).abs().mean(dim=(1, 2, 3), keepdim=True)
            grad = (x0_lora - x0_sd) / weight
        return F.mse_loss(latent0, (latent0 - grad).detach())

    def vsd_lora_loss(self, latent0, text):
        """Diffusion (ε-prediction) loss of the VSD LoRA on the generated latents (detached)."""
        latent0, text = latent0.detach(), text.detach()
        noise = torch.randn_like(latent0)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (latent0.shape[0], ),
                          device=latent0.device)
        pred = self.vsd_unet(self.scheduler.add_noise(latent0, noise, t), t,
                             encoder_hidden_states=text).sample
        return F.mse_loss(pred.float(), noise.float())

    # ----------------------------------------------------------------- BaseModel API
    def forward(self, inputs, data_samples=None, mode='tensor'):
        """Args:
            inputs (Tensor): LQ (B, 3, H, W) in [-1, 1] from ``SCRDataPreprocessor``.
            data_samples (list[SegDataSample]): With ``gt_hq_img`` (loss) and ``gt_sem_seg``.
            mode (str): ``'loss'``, ``'predict'`` or ``'tensor'``.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            text, _ = self.encode_prompts(data_samples or [{}] * len(inputs), training=False)
            return self.restore(inputs, text)
        raise ValueError(f'SCRRestorer: unknown mode {mode!r} (loss, predict, tensor)')

    def loss(self, inputs, data_samples):
        """Pixel + LPIPS + L_SCL (+ VSD) losses, each its own key for logging."""
        if any('gt_hq_img' not in s for s in data_samples):
            raise KeyError('SCRRestorer needs data_samples[i].gt_hq_img: use '
                           'Degrade(keep_hq=True) and PackRestorationInputs in the train pipeline')
        hq = torch.stack([s.gt_hq_img.data for s in data_samples])
        text, positions = self.encode_prompts(data_samples, training=True)
        restored, latent0 = self.generate(inputs, text, record=self.scl_loss is not None)
        loss_fn = F.mse_loss if self.pixel_loss == 'mse' else F.l1_loss
        losses = {f'loss_{self.pixel_loss}': self.pixel_weight * loss_fn(restored, hq)}
        if self.lpips is not None:
            losses['loss_lpips'] = self.lpips_weight * self.lpips(restored, hq).mean()
        if self.scl_loss is not None:
            labels = torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
            losses.update(self.scl_loss(self.attention_maps(), positions, labels))
            self.attn_store.release()
        if self.vsd is not None:
            # One optimizer steps both the generator and the VSD LoRA: their losses reach
            # disjoint parameters (the VSD targets are computed without gradient, the LoRA's
            # diffusion loss sees detached latents), as OSEDiff's two optimizers do.
            losses['loss_vsd'] = self.vsd['weight'] * self.vsd_loss(latent0, text)
            losses['loss_vsd_lora'] = self.vsd['lora_weight'] * self.vsd_lora_loss(latent0, text)
        return losses

    def predict(self, inputs, data_samples):
        """Restore and attach ``pred_img``, ``lq_img``, ``gt_hq_img`` as uint8 RGB (3, H, W),
        cropped to each image's ``img_shape`` (and attention maps with ``save_attention``)."""
        if data_samples is None:
            raise ValueError('SCRRestorer.predict needs data_samples (for the image sizes)')
        text, positions = self.encode_prompts(data_samples, training=False)
        restored = self.restore(inputs, text, record=self.save_attention)
        maps = self.attention_maps() if self.save_attention else None
        self.attn_store.release()
        for i, sample in enumerate(data_samples):
            h, w = sample.img_shape
            sample.pred_img = PixelData(data=to_uint8_range(restored[i, :, :h, :w]))
            sample.lq_img = PixelData(data=to_uint8_range(inputs[i, :, :h, :w]))
            if 'gt_hq_img' in sample:
                sample.gt_hq_img = PixelData(data=to_uint8_range(sample.gt_hq_img.data[:, :h, :w]))
            if 'gt_sem_seg' in sample:
                sample.gt_sem_seg = PixelData(data=sample.gt_sem_seg.data[:, :h, :w])
            if maps is not None and positions[i]:
                per_class = torch.stack(
                    [self._class_map(maps, i, idx) for idx in positions[i].values()])
                rows = -(-h * per_class.shape[-2] // inputs.shape[-2])  # unpadded part
                cols = -(-w * per_class.shape[-1] // inputs.shape[-1])
                sample.attn_maps = PixelData(data=per_class[:, :rows, :cols])
                sample.set_metainfo(dict(attn_classes=list(positions[i])))
        return data_samples

    @staticmethod
    def _class_map(maps, i, token_idx):
        """Head- and sub-token-mean attention of one class, averaged over layers at latent size."""
        size = max((m.shape[2:4] for m in maps), key=lambda s: s[0] * s[1])
        per_layer = [
            F.interpolate(m[i].mean(0)[..., token_idx].mean(-1)[None, None], size=size,
                          mode='bilinear', align_corners=False)[0, 0] for m in maps
        ]
        return torch.stack(per_layer).mean(0).detach()
