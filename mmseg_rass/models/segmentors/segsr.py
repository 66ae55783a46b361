"""SegSR: super-resolution and segmentation diffusion refining each other through the DMB."""
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import add_prefix

from ..restorers.scr_data_preprocessor import to_uint8_range

# ImageNet statistics of mmseg's pretrained backbones (0-255 RGB).
IMAGENET_NORM = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


def upscale_bicubic(img, scale):
    """Bicubic ×``scale`` upsampling of images (B, C, h, w): ``F.interpolate`` (a = −0.75,
    ``align_corners=False``), no clamping; ``scale`` 1 returns ``img`` itself.

    SegSR's LQ input goes through it before the VAE and the backbone, and the bicubic baseline
    of :class:`~mmseg_rass.evaluation.RestorationMetric` is the same operation.
    """
    if scale == 1:
        return img
    return F.interpolate(img, scale_factor=scale, mode='bicubic', align_corners=False)


def _set_matching(cfg, key, value, owner):
    """``cfg[key] = value`` unless the config already says something else."""
    if key in cfg and cfg[key] != value:
        raise ValueError(f'SegSR: {owner}.{key}={cfg[key]!r} conflicts with {value!r} set by '
                         'SegSR (remove it from the config)')
    cfg[key] = value


@MODELS.register_module()
class SegSR(BaseSegmentor):
    """Dual diffusion for low-quality images: SRDM restores, SegDM segments, the DMB couples them.

    Reverse process (``num_steps`` steps on the SRDM sampler's timesteps t_k; SegDM runs at the
    same continuous time u_k = t_k / T)::

        Ẑ ← z_lq (LQ latent),  Ŝ ← uniform class probabilities,  z ← noise,  m ← noise
        for each step k:
            C_k = DMB.segmentation_condition(Ŝ)        I_k = DMB.image_condition(Ẑ)
            out = SRDM(z, t_k | z_lq, C_k)             logits = SegDM(feats(LQ), m, u_k | I_k)
            Ẑ = x̂0(out); z ← sampler step             Ŝ = softmax(logits); m ← DDIM step
        restored = VAE.dec(z);  segmentation = logits of the last step

    Training at a shared random time (t uniform in [0, T), u = t / T), with the bridge fed by
    the other branch's estimate at that step (self-conditioning): a first pass from the initial
    estimates (LQ latent, uniform), a second pass whose DMB conditions are the first pass's
    ẑ0 and softmax — gradients flow through both, so each branch's loss reaches the other.
    Loss = ``sr_loss_weight``·MSE(SRDM target) + ``seg_loss_weight``·SegDM decode-head loss
    (CE of the denoised map), for the second pass, plus ``init_pass_weight`` × the same for the
    first pass. With ``bridge=False`` there is no DMB, one pass, no condition inputs. With
    ``srdm.train_vae`` the VAE's reconstruction MSE of the HQ image is added
    (``vae_loss_weight``).

    Super-resolution (``scale`` > 1, the Real-ISR setting): the LQ image (h, w) is first
    upsampled bicubically to the target size (s·h, s·w) (:func:`upscale_bicubic`, clamped to
    [-1, 1]), as StableSR/SeeSR/OSEDiff feed SD; the VAE, the UNet and the backbone then work at
    the target size: SegDM's features come from the upsampled LQ image (the finest backbone
    level, s·h/4 × s·w/4 for a MiT), and the label map and restoration are at s·h × s·w.

    Inputs are RGB in [-1, 1] (``SegSRDataPreProcessor``); any size works (padded inside to the
    SRDM's multiple, 64 for SD, outputs cropped back). Test-time outputs: ``pred_sem_seg`` /
    ``seg_logits`` (at ``ori_shape``), ``pred_img`` (uint8 RGB, ``scale`` × ``img_shape``) and
    ``lq_img`` (the input, uint8 RGB at ``img_shape``). Ground truth is read only by
    :meth:`loss`.

    Args:
        srdm (dict): :class:`SRDM` config (``cond_channels`` is set here).
        backbone (dict): Any mmseg backbone, run on the LQ image for SegDM.
        segdm (dict): :class:`SegDM` config (``cond_channels`` is set here).
        bridge (dict | bool): :class:`DualModalityBridge` config (``num_classes`` and
            ``latent_channels`` are set here), or False for the ablation without bridge.
        neck (dict, optional): mmseg neck after the backbone.
        auxiliary_head (dict | list[dict], optional): mmseg heads on the backbone features
            (training only, as DDP's auxiliary FCN head).
        scale (int): Upscaling factor from the LQ input to the output (1, 2, 4, ...). Default 1
            (restoration at the input size).
        num_steps (int): Reverse steps at test time. Default 4.
        sample_seed (int): Seed of the starting noise; every image gets the noise of this seed,
            so outputs do not depend on batch composition. Default 0.
        sr_loss_weight (float): Weight of the SRDM loss. Default 1.
        seg_loss_weight (float): Weight of the SegDM loss. Default 1.
        init_pass_weight (float): Weight of the first (unbridged-estimate) pass's losses.
            Default 1.
        vae_loss_weight (float): Weight of the VAE reconstruction loss (only with
            ``srdm.train_vae``). Default 1.
        backbone_norm (dict, optional): ``mean``/``std`` (0-255 RGB) the backbone expects; the
            [-1, 1] input is renormalised to them. Default ImageNet; None feeds [-1, 1].
        pretrained (None): Accepted because mmseg's ``init_model`` sets it (to None); backbone
            weights come from ``backbone.init_cfg``.
        train_cfg (dict, optional): Passed to auxiliary heads.
        test_cfg (dict, optional): Only ``mode='whole'`` (the whole image is sampled at once).
        data_preprocessor (dict, optional): Default ``SegSRDataPreProcessor``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 srdm,
                 backbone,
                 segdm,
                 bridge=dict(type='DualModalityBridge'),
                 neck=None,
                 auxiliary_head=None,
                 scale=1,
                 num_steps=4,
                 sample_seed=0,
                 sr_loss_weight=1.0,
                 seg_loss_weight=1.0,
                 init_pass_weight=1.0,
                 vae_loss_weight=1.0,
                 backbone_norm=IMAGENET_NORM,
                 pretrained=None,
                 train_cfg=None,
                 test_cfg=None,
                 data_preprocessor=None,
                 init_cfg=None):
        if (test_cfg or {}).get('mode', 'whole') != 'whole':
            raise ValueError(f'SegSR: test_cfg.mode={test_cfg["mode"]!r} is not supported; SegSR '
                             "samples the whole image (mode='whole'; resize large images in the "
                             'test pipeline)')
        if pretrained is not None:
            raise ValueError(f'SegSR: pretrained={pretrained!r} is not used; give backbone '
                             'weights in backbone.init_cfg')
        if data_preprocessor is None:
            data_preprocessor = dict(type='SegSRDataPreProcessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if bridge is True:
            bridge = dict(type='DualModalityBridge')
        if bridge is not False and bridge is not None and not isinstance(bridge, dict):
            raise TypeError(f'SegSR: bridge must be a DualModalityBridge config or False, got '
                            f'{bridge!r}')
        segdm, srdm = dict(segdm), dict(srdm)
        if bridge:
            bridge = dict(bridge)
            _set_matching(bridge, 'num_classes', segdm.get('num_classes'), 'bridge')
            with torch.random.fork_rng(devices=[]):  # the other parts draw the same numbers
                self.bridge = MODELS.build(bridge)   # with and without the bridge
            _set_matching(srdm, 'cond_channels', self.bridge.seg_cond_channels, 'srdm')
            _set_matching(segdm, 'cond_channels', self.bridge.img_cond_channels, 'segdm')
        else:
            self.bridge = None
            _set_matching(srdm, 'cond_channels', 0, 'srdm')
            _set_matching(segdm, 'cond_channels', 0, 'segdm')
        self.srdm = MODELS.build(srdm)
        if self.bridge is not None and self.bridge.latent_channels != self.srdm.latent_channels:
            raise ValueError(f'SegSR: bridge.latent_channels={self.bridge.latent_channels} but '
                             f'the SRDM latent has {self.srdm.latent_channels} channels')
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.segdm = MODELS.build(segdm)
        self.num_classes = self.segdm.num_classes
        self.align_corners = False
        if auxiliary_head is not None:
            heads = auxiliary_head if isinstance(auxiliary_head, list) else [auxiliary_head]
            for head in heads:
                if head.get('num_classes', self.num_classes) != self.num_classes:
                    raise ValueError(f'SegSR: auxiliary_head.num_classes={head["num_classes"]} '
                                     f'but segdm.num_classes={self.num_classes}')
            built = [MODELS.build(dict(h, num_classes=self.num_classes)) for h in heads]
            self.auxiliary_head = built[0] if len(built) == 1 else torch.nn.ModuleList(built)
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f'SegSR: scale must be a positive integer (1, 2, 4, ...), got '
                             f'{scale!r}')
        self.scale = scale
        self.num_steps = int(num_steps)
        self.sample_seed = int(sample_seed)
        self.sr_loss_weight = sr_loss_weight
        self.seg_loss_weight = seg_loss_weight
        self.init_pass_weight = init_pass_weight
        self.vae_loss_weight = vae_loss_weight
        if backbone_norm is not None:
            mean = torch.tensor(backbone_norm['mean'], dtype=torch.float32).view(1, 3, 1, 1)
            std = torch.tensor(backbone_norm['std'], dtype=torch.float32).view(1, 3, 1, 1)
            self.register_buffer('backbone_mean', mean, persistent=False)
            self.register_buffer('backbone_std', std, persistent=False)
        self.backbone_norm = backbone_norm
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    # ----------------------------------------------------------------- helpers
    def _pad(self, img, value=None):
        """Pad (B, C, H, W) bottom/right to the SRDM's multiple (replicate, or ``value``)."""
        d = self.srdm.size_divisor
        h, w = img.shape[-2:]
        pad = (0, (d - w % d) % d, 0, (d - h % d) % d)
        if not any(pad):
            return img
        if value is None:
            return F.pad(img, pad, mode='replicate')
        return F.pad(img, pad, value=value)

    def upsample(self, inputs):
        """LQ images (B, 3, h, w) in [-1, 1] → bicubic ×``scale``, clamped to [-1, 1]."""
        return upscale_bicubic(inputs, self.scale).clamp(-1, 1)

    def extract_feat(self, inputs):
        """Backbone (+ neck) features of LQ images (B, 3, H, W) in [-1, 1]."""
        if self.backbone_norm is not None:
            inputs = ((inputs + 1) * 127.5 - self.backbone_mean) / self.backbone_std
        feats = self.backbone(inputs)
        return self.neck(feats) if self.with_neck else feats

    def _noise(self, batch, shape, device, dtype, offset):
        """Starting noise: every image draws from a CPU generator seeded with ``sample_seed``."""
        gen = torch.Generator().manual_seed(self.sample_seed + offset)
        one = torch.randn(shape, generator=gen, dtype=torch.float32)
        return one.to(device=device, dtype=dtype)[None].repeat(batch, *([1] * len(shape)))

    def _uniform(self, like, size):
        """Uniform class probabilities (B, K, *size): the segmentation estimate before step 1."""
        return like.new_full((like.shape[0], self.num_classes, *size), 1.0 / self.num_classes)

    # ----------------------------------------------------------------- training
    def loss(self, inputs, data_samples):
        """Joint loss at a shared random time (see class docstring).

        Args:
            inputs (Tensor): LQ images (B, 3, h, w) in [-1, 1].
            data_samples (list[SegDataSample]): With ``gt_sem_seg`` and ``gt_hq_img`` at the
                target size (``scale`` × the input; float, normalised and padded by
                ``SegSRDataPreProcessor``).

        Returns:
            dict[str, Tensor]: ``loss_sr``, ``seg.loss_*`` (and ``seg.acc_seg``), with the bridge
            also ``init.loss_sr``, ``init.seg.loss_*``; ``aux.*`` with auxiliary heads.
        """
        if any('gt_hq_img' not in s for s in data_samples):
            raise KeyError('SegSR needs data_samples[i].gt_hq_img for training: put '
                           'Degrade(keep_hq=True) and PackRestorationInputs in the train '
                           'pipeline and use SegSRDataPreProcessor')
        hq_imgs = torch.stack([s.gt_hq_img.data for s in data_samples]).to(inputs)
        lq = self.upsample(inputs)
        if hq_imgs.shape != lq.shape:
            raise ValueError(f'SegSR: HQ batch {tuple(hq_imgs.shape)} is not scale={self.scale} '
                             f'x the LQ batch {tuple(inputs.shape)}: the HQ crop must be '
                             f'{self.scale}x the LQ input (Degrade with a x{self.scale} preset '
                             'after the crop) and SegSRDataPreProcessor must pad the batch')
        labels = torch.stack([s.gt_sem_seg.data[0] for s in data_samples]).long()
        if labels.shape[-2:] != hq_imgs.shape[-2:]:
            raise ValueError(f'SegSR: labels {tuple(labels.shape[-2:])} and HQ images '
                             f'{tuple(hq_imgs.shape[-2:])} differ in size: labels belong to '
                             'the HQ image')
        self.segdm.check_labels(labels)
        lq, hq = self._pad(lq), self._pad(hq_imgs)
        labels = self._pad(labels[:, None], value=self.segdm.ignore_index)[:, 0]

        latents = self.srdm.encode(torch.cat([lq, hq]))
        lq_latent, hq_latent = latents.chunk(2)
        feats = self.extract_feat(lq)
        feat = self.segdm.fuse_features(feats)
        batch = lq.shape[0]
        timesteps = torch.randint(0, self.srdm.num_train_timesteps, (batch, ), device=lq.device)
        times = timesteps.float() / self.srdm.num_train_timesteps
        noise = torch.randn_like(hq_latent)
        noisy_latent = self.srdm.add_noise(hq_latent, noise, timesteps)
        clean_map = self.segdm.encode_labels(labels, feat.shape[-2:])
        noisy_map = self.segdm.noise_map(clean_map, times, torch.randn_like(clean_map))

        def run(sr_cond, seg_cond, prefix, weight):
            out = self.srdm(noisy_latent, timesteps, lq_latent, sr_cond)
            logits = self.segdm(feat, noisy_map, times, seg_cond)
            losses = {'loss_sr': self.sr_loss_weight * self.srdm.loss(out, hq_latent, noise,
                                                                      timesteps)}
            seg = self.segdm.loss(logits, labels)
            losses.update(add_prefix({k: v * self.seg_loss_weight if 'loss' in k else v
                                      for k, v in seg.items()}, 'seg'))
            losses = {k: v * weight if 'loss' in k else v for k, v in losses.items()}
            return out, logits, add_prefix(losses, prefix) if prefix else losses

        if self.bridge is None:
            _, _, losses = run(None, None, '', 1.0)
        else:
            size_z, size_m = lq_latent.shape[-2:], feat.shape[-2:]
            out, logits, losses = run(
                self.bridge.segmentation_condition(self._uniform(feat, size_m), size_z),
                self.bridge.image_condition(lq_latent, size_m), 'init', self.init_pass_weight)
            latent0 = self.srdm.predict_x0(out, noisy_latent, timesteps)
            _, _, second = run(
                self.bridge.segmentation_condition(logits.softmax(dim=1), size_z),
                self.bridge.image_condition(latent0, size_m), '', 1.0)
            losses.update(second)
        if self.srdm.train_vae:
            losses['loss_vae'] = self.vae_loss_weight * self.srdm.reconstruction_loss(hq)
        if self.with_auxiliary_head:
            heads = self.auxiliary_head
            if not isinstance(heads, torch.nn.ModuleList):
                heads = [heads]
            padded = [type(s)(gt_sem_seg=PixelData(data=lab[None]))
                      for s, lab in zip(data_samples, labels)]
            for i, head in enumerate(heads):
                key = 'aux' if len(heads) == 1 else f'aux_{i}'
                losses.update(add_prefix(head.loss(feats, padded, self.train_cfg), key))
        return losses

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, inputs, num_steps=None, return_steps=False):
        """The joint reverse process on LQ images (never reads ground truth).

        Args:
            inputs (Tensor): LQ images (B, 3, h, w) in [-1, 1], any h, w.
            num_steps (int, optional): Reverse steps; default ``self.num_steps``.
            return_steps (bool): Also return each step's estimates.

        Returns:
            dict: at the target size H, W = ``scale`` × (h, w): ``restored`` (B, 3, H, W) in
            [-1, 1]; ``seg_logits`` (B, K, H, W) of the last step; with ``return_steps``,
            ``steps``: per step ``dict(timestep, latent0 (B, 4, H', W') of the padded target,
            seg_logits (B, K, H, W))``.
        """
        num_steps = self.num_steps if num_steps is None else int(num_steps)
        lq = self.upsample(inputs)
        height, width = lq.shape[-2:]
        lq = self._pad(lq)
        lq_latent = self.srdm.encode(lq)
        feat = self.segdm.fuse_features(self.extract_feat(lq))
        batch, device, dtype = lq.shape[0], lq.device, lq_latent.dtype
        sampler = self.srdm.make_sampler(num_steps, device)
        latent = self.srdm.initial_latent(
            sampler, lq_latent, self._noise(batch, lq_latent.shape[1:], device, dtype, 0))
        noisy_map = self._noise(batch, (self.segdm.channels, *feat.shape[-2:]), device,
                                feat.dtype, 1)
        latent0, seg_probs = lq_latent, self._uniform(feat, feat.shape[-2:])
        total = self.srdm.num_train_timesteps
        timesteps = sampler.timesteps
        steps, logits = [], None
        for k, t in enumerate(timesteps):
            now = float(t) / total
            nxt = float(timesteps[k + 1]) / total if k + 1 < len(timesteps) else 0.0
            sr_cond = seg_cond = None
            if self.bridge is not None:
                sr_cond = self.bridge.segmentation_condition(seg_probs, lq_latent.shape[-2:])
                seg_cond = self.bridge.image_condition(latent0, feat.shape[-2:])
            t_batch = t.repeat(batch).to(device)
            out = self.srdm(latent, t_batch, lq_latent, sr_cond)
            logits = self.segdm(feat, noisy_map, torch.full((batch, ), now, device=device),
                                seg_cond)
            latent0 = self.srdm.predict_x0(out, latent, t_batch)
            latent = sampler.step(out, t, latent).prev_sample
            noisy_map = self.segdm.ddim_step(noisy_map, logits, now, nxt)
            seg_probs = logits.softmax(dim=1)
            if return_steps:
                steps.append(dict(timestep=int(t), latent0=latent0,
                                  seg_logits=self._full_size(logits, lq, height, width)))
        result = dict(restored=self.srdm.decode(latent)[..., :height, :width],
                      seg_logits=self._full_size(logits, lq, height, width))
        if return_steps:
            result['steps'] = steps
        return result

    def _full_size(self, logits, padded, height, width):
        """Logits at the padded input size, cropped to (height, width)."""
        logits = resize(logits, size=padded.shape[-2:], mode='bilinear',
                        align_corners=self.align_corners)
        return logits[..., :height, :width]

    def decode_latent(self, latent, height, width):
        """Decode a (padded) latent to an image (B, 3, height, width) in [-1, 1]."""
        return self.srdm.decode(latent)[..., :height, :width]

    # ----------------------------------------------------------------- mmseg API
    def encode_decode(self, inputs, batch_img_metas):
        """Segmentation logits (B, K, H, W) of LQ images (the joint reverse process)."""
        return self.sample(inputs)['seg_logits']

    def predict(self, inputs, data_samples=None):
        """Segment and restore.

        Args:
            inputs (Tensor): LQ images (B, 3, h, w) in [-1, 1].
            data_samples (list[SegDataSample], optional): Metainfo (``img_shape``,
                ``ori_shape``, padding); ground truth in them is not used.

        With ``scale`` > 1 the segmentation is at ``ori_shape`` when the pipeline degraded a
        loaded HQ image (``ori_shape`` ≠ ``img_shape``), else at ``scale`` × the LQ input.

        Returns:
            list[SegDataSample]: ``pred_sem_seg``, ``seg_logits`` (``ori_shape``), ``pred_img``
            (uint8 RGB (3, s·h, s·w), ``scale`` × ``img_shape``) and ``lq_img`` (uint8 RGB
            (3, h, w) at ``img_shape``).
        """
        out = self.sample(inputs)
        s = self.scale
        if s > 1 and data_samples is not None:
            for sample in data_samples:  # the input file is the LQ image: segment at s x it
                if tuple(sample.metainfo.get('ori_shape', ())) == tuple(sample.img_shape):
                    h, w = sample.img_shape
                    sample.set_metainfo(dict(ori_shape=(s * h, s * w)))
        results = self.postprocess_result(out['seg_logits'], data_samples)
        for i, sample in enumerate(results):
            h, w = sample.metainfo.get('img_shape', inputs.shape[-2:])
            sample.pred_img = PixelData(
                data=to_uint8_range(out['restored'][i, :, :s * h, :s * w]))
            sample.lq_img = PixelData(data=to_uint8_range(inputs[i, :, :h, :w]))
        return results

    def _forward(self, inputs, data_samples=None):
        """``(seg_logits (B, K, H, W), restored (B, 3, H, W) in [-1, 1])`` at ``scale`` × input."""
        out = self.sample(inputs)
        return out['seg_logits'], out['restored']

    @torch.no_grad()
    def restore_images(self, inputs, data_samples=None):
        """Restored images (B, 3, H, W) in [-1, 1], ``scale`` × the input (SegSR as
        ``RestoreThenSegment``'s restorer)."""
        return self.sample(inputs)['restored']
