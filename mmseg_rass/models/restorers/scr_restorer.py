"""SCR: the semantic-constrained one-step diffusion restorer (first half of RASS)."""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from mmseg.registry import MODELS

from ...lora import UNET_LORA_TARGETS, load_scr_lora, load_scr_lora_into, make_lora_config
from ..diffusion import (build_scheduler, build_text_encoder, build_unet, build_vae,
                         resolve_arch)
from ..trainable_state import save_trainable_only
from .lpips_net import load_lpips
from .scr_attention import AttentionStore, set_scr_attn_processors
from .scr_data_preprocessor import to_uint8_range
from .scr_prompt import build_class_prompt, present_classes


@MODELS.register_module()
class SCRRestorer(BaseModel):
    """One-step Stable Diffusion restorer with a LoRA UNet and the L_SCL attention loss.

    ``z = VAE.enc(LQ)·s`` → ``ε = UNet(z, t, text)`` → ``ẑ0 = (z − √(1−ᾱ_t)·ε)/√ᾱ_t`` (one DDPM
    step to t = 0; v- and sample-prediction schedulers handled) → ``VAE.dec(ẑ0 / s)``, with
    s = ``vae.config.scaling_factor`` (0.18215). The text is the names of the classes present in
    the GT (``"road, car, traffic light"``). Trainable: the UNet LoRA and ``conv_in``;
    everything else is frozen, and ``state_dict()`` (hence every checkpoint) holds only the
    trainable tensors — the frozen parts always come from ``pretrained_model_path`` / configs
    (:func:`~mmseg_rass.models.trainable_state.save_trainable_only`).

    Args:
        pretrained_model_path (str, optional): Local SD2.1-base folder (diffusers layout).
        arch (str | dict, optional): Instead of the folder, random weights of an architecture:
            ``'tiny'``, ``'sd21'`` or ``dict(unet=..., vae=..., text_encoder=...)`` of constructor
            arguments (see :func:`~mmseg_rass.models.diffusion.resolve_arch`).
        init_seed (int): Seed of every random initialisation (weights built from configs, the
            fresh LoRA), so that a model rebuilt from its config has the same frozen part.
        scheduler_path (str, optional): Folder with ``scheduler/``; default: the SD folder, or
            SD's training schedule when built from configs.
        timestep (int): The single UNet timestep. Default 1 (RASS's copy; OSEDiff uses 999).
        lora_rank (int): LoRA rank. Default 4.
        lora_targets (list[str]): UNet module suffixes to adapt. Default the design's list.
        lora_init (str): peft ``init_lora_weights``. Default ``'gaussian'``.
        scr_lora (str, optional): Start from this SCR LoRA file instead of a fresh adapter.
        class_names (Sequence[str] | str, optional): Dataset class names, or a dataset type
            (``'CityscapesDataset'``) to take them from; when None ``SCRDatasetMetaHook`` sets
            them from the dataset metainfo.
        pixel_loss (str): ``'mse'`` or ``'l1'``. pixel_weight (float): its weight (1.0).
        lpips_path (str, optional): Full ``lpips.LPIPS`` state dict; LPIPS loss only if given.
        lpips_net (str): ``'vgg'`` or ``'alex'``. lpips_weight (float): Default 2.0.
        scl_loss (dict, optional): ``SCLLoss`` config; None disables L_SCL.
        attn_strides (tuple[int]): Latent-relative strides whose cross-attention maps L_SCL uses
            (1, 2, 4, 8 = 64², 32², 16², 8² at 512²).
        sample_latent (bool): Sample the VAE posterior instead of taking its mean. Default False.
        gradient_checkpointing (bool): UNet gradient checkpointing. Default False.
        test_prompt (str): ``'gt'`` names the GT classes at test time too (when GT is loaded);
            any other string is used as the fixed test prompt. Default ``'gt'``.
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
                 timestep=1,
                 lora_rank=4,
                 lora_targets=UNET_LORA_TARGETS,
                 lora_init='gaussian',
                 scr_lora=None,
                 class_names=None,
                 pixel_loss='mse',
                 pixel_weight=1.0,
                 lpips_path=None,
                 lpips_net='vgg',
                 lpips_weight=2.0,
                 scl_loss=dict(type='SCLLoss'),
                 attn_strides=(1, 2, 4, 8),
                 sample_latent=False,
                 gradient_checkpointing=False,
                 test_prompt='gt',
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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)  # random parts (configs, LoRA) rebuild identically
            self.vae = build_vae(path, configs.get('vae')).requires_grad_(False)
            self.text_encoder, self.tokenizer = build_text_encoder(path,
                                                                   configs.get('text_encoder'))
            self.text_encoder.requires_grad_(False)
            self.scheduler = build_scheduler(scheduler_path or pretrained_model_path)
            unet = build_unet(path, configs.get('unet')).requires_grad_(False)
            if scr_lora is not None:
                self.lora_config, lora_state, conv_in_state = load_scr_lora(scr_lora)
                self.unet = load_scr_lora_into(unet, self.lora_config, lora_state, conv_in_state)
            else:
                self.lora_config = make_lora_config(lora_rank, lora_targets, lora_init)
                unet.add_adapter(self.lora_config)
                self.unet = unet
        conv_in = getattr(self.unet.conv_in, 'base_layer', self.unet.conv_in)
        conv_in.requires_grad_(True)
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.attn_store = AttentionStore(attn_strides)
        set_scr_attn_processors(self.unet, self.attn_store)

        self.timestep = int(timestep)
        self.sample_latent = sample_latent
        self.class_names = None
        if class_names is not None:
            self.set_class_names(class_names)
        self.pixel_loss = pixel_loss
        self.pixel_weight = pixel_weight
        self.lpips = load_lpips(lpips_path, lpips_net) if lpips_path else None
        self.lpips_weight = lpips_weight
        self.scl_loss = MODELS.build(scl_loss) if scl_loss is not None else None
        self.test_prompt = test_prompt
        self.save_attention = save_attention
        save_trainable_only(self, dict(pretrained_model_path=path, arch=arch, scr_lora=scr_lora,
                                       init_seed=None if path else init_seed))

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
        return self

    # ----------------------------------------------------------------- generation
    def set_class_names(self, class_names):
        """Dataset class names used to build prompts.

        Args:
            class_names (Sequence[str] | str): The names, or a registered dataset type (e.g.
                ``'CityscapesDataset'``) whose ``METAINFO['classes']`` are used.
        """
        if isinstance(class_names, str):
            from mmseg.registry import DATASETS
            dataset = DATASETS.get(class_names)
            if dataset is None or 'classes' not in getattr(dataset, 'METAINFO', {}):
                raise ValueError(f'SCRRestorer: class_names={class_names!r} is neither a list of '
                                 'names nor a registered dataset type with METAINFO classes')
            class_names = dataset.METAINFO['classes']
        self.class_names = list(class_names)

    def encode_prompts(self, data_samples, training):
        """Text embeddings (B, 77, C) and per-image class token positions."""
        use_gt = training or self.test_prompt == 'gt'
        ids, positions = [], []
        for sample in data_samples:
            if use_gt and 'gt_sem_seg' in sample:
                if self.class_names is None:
                    raise ValueError('SCRRestorer needs the dataset class names to build prompts: '
                                     'set model.class_names or add '
                                     "custom_hooks=[dict(type='SCRDatasetMetaHook')]")
                classes = present_classes(sample.gt_sem_seg.data, len(self.class_names))
                tokens, where = build_class_prompt(self.tokenizer, self.class_names, classes)
            else:
                text = '' if self.test_prompt == 'gt' else self.test_prompt
                tokens = self.tokenizer(text, padding='max_length', truncation=True,
                                        max_length=self.tokenizer.model_max_length,
                                        return_tensors='pt').input_ids[0]
                where = {}
            ids.append(tokens)
            positions.append(where)
        device = self.vae.device
        with torch.no_grad():
            text = self.text_encoder(torch.stack(ids).to(device))[0]
        return text, positions

    def restore(self, lq, text, record=False):
        """One-step restoration.

        Args:
            lq (Tensor): LQ images (B, 3, H, W) in [-1, 1], H and W multiples of 8.
            text (Tensor): Text embeddings (B, L, C).
            record (bool): Record cross-attention probabilities into ``self.attn_store``.

        Returns:
            Tensor: Restored images (B, 3, H, W) in [-1, 1].
        """
        scale = self.vae.config.scaling_factor
        posterior = self.vae.encode(lq).latent_dist
        latent = (posterior.sample() if self.sample_latent else posterior.mode()) * scale
        self.attn_store.reset(tuple(latent.shape[-2:]), recording=record)
        t = torch.full((lq.shape[0], ), self.timestep, device=lq.device, dtype=torch.long)
        pred = self.unet(latent, t, encoder_hidden_states=text.to(latent.dtype)).sample
        latent0 = self.predict_x0(pred, latent)
        return self.vae.decode(latent0 / scale).sample.clamp(-1, 1)

    def predict_x0(self, model_output, latent):
        """The scheduler step from ``timestep`` straight to t = 0 (the clean-latent estimate)."""
        alpha = self.scheduler.alphas_cumprod[self.timestep].to(latent)
        kind = self.scheduler.config.prediction_type
        if kind == 'epsilon':
            return (latent - (1 - alpha).sqrt() * model_output) / alpha.sqrt()
        if kind == 'v_prediction':
            return alpha.sqrt() * latent - (1 - alpha).sqrt() * model_output
        if kind == 'sample':
            return model_output
        raise ValueError(f'scheduler prediction_type {kind!r} is not supported')

    def attention_maps(self):
        """Recorded probabilities as a list of (B, heads, h, w, L), one per layer."""
        maps = []
        for stride, layers in sorted(self.attn_store.maps.items()):
            h, w = self.attn_store.spatial_size(stride)
            maps += [p.reshape(*p.shape[:2], h, w, p.shape[-1]) for p in layers]
        return maps

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
        """Pixel (+ LPIPS) + L_SCL losses, each its own key for logging."""
        if any('gt_hq_img' not in s for s in data_samples):
            raise KeyError('SCRRestorer needs data_samples[i].gt_hq_img: use '
                           'Degrade(keep_hq=True) and PackRestorationInputs in the train pipeline')
        hq = torch.stack([s.gt_hq_img.data for s in data_samples])
        text, positions = self.encode_prompts(data_samples, training=True)
        restored = self.restore(inputs, text, record=self.scl_loss is not None)
        loss_fn = F.mse_loss if self.pixel_loss == 'mse' else F.l1_loss
        losses = {f'loss_{self.pixel_loss}': self.pixel_weight * loss_fn(restored, hq)}
        if self.lpips is not None:
            losses['loss_lpips'] = self.lpips_weight * self.lpips(restored, hq).mean()
        if self.scl_loss is not None:
            labels = torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
            losses.update(self.scl_loss(self.attention_maps(), positions, labels))
            self.attn_store.release()
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
