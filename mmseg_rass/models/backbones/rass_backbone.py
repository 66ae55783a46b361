"""RASS backbone: a Stable Diffusion VAE encoder + UNet (SCR LoRA merged) as an mmseg backbone."""
import contextlib
import json
import logging
import math
import os.path as osp

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmseg.registry import DATASETS, MODELS

from ...lora import UNET_LORA_TARGETS, make_lora_config, merge_scr_lora
from ..diffusion import build_text_encoder, build_unet, build_vae, resolve_arch
from ..trainable_state import save_trainable_only
from .rass_projection import BottleneckProjection

_DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16}


def _stride_of_blocks(blocks, attr):
    """Cumulative stride factor after each block (x2 for every block with a re/downsampler)."""
    factors, f = [], 1
    for block in blocks:
        f *= 2 if getattr(block, attr, None) is not None else 1
        factors.append(f)
    return factors


def _block_out_channels(block):
    return block.resnets[-1].out_channels


def _capture_outputs(blocks, indices):
    """Register forward hooks that store ``blocks[i]``'s output in the returned dict."""
    outputs = {}
    handles = [
        blocks[i].register_forward_hook(lambda m, args, out, i=i: outputs.__setitem__(i, out))
        for i in indices
    ]
    return outputs, handles


@MODELS.register_module()
class RASSBackbone(BaseModule):
    """Stable Diffusion features for segmentation (RASS), with the SCR LoRA merged.

    Builds the SD VAE encoder and UNet, merges an optional SCR LoRA file into the UNet
    (peft ``merge_and_unload``), then adds a new segmentation LoRA. The text conditioning (class
    prompts, or the empty prompt) is encoded once by the frozen text encoder, kept as a buffer,
    and the text encoder is dropped. One UNet pass at ``timestep`` on the VAE latent gives the
    features: VAE down-block outputs ``vae_feature_indices`` and UNet up-block outputs
    ``unet_feature_indices``; each is projected (:class:`BottleneckProjection`, GroupNorm) to
    ``out_channels`` and the projections are summed per stride. For SD2.1-base the strides are
    VAE[1] s4, VAE[3] s8, UNet up[0] s32 (1280 ch), up[1] s16 (1280), up[2] s8 (640), up[3] s8
    (320), so the outputs are 4 maps at strides 4, 8, 16, 32 (computed from the modules, not
    assumed). ``out_strides`` chooses which map each output index carries, so a head that reads
    one level (``in_index``) gets the stride it was designed for (e.g. ``(4, 8, 8, 8)``, the
    strides of a dilated ResNet-d8, for PSPNet/DeepLabV3(+)/OCRNet heads).

    Trainable: the segmentation LoRA, the UNet's ``conv_in`` (fully) and the projections. The
    VAE and the rest of the UNet are frozen and kept in eval mode. ``state_dict()`` holds only
    the trainable part (plus a ``base_model`` note in the metadata); loading such a checkpoint
    into a model built from the same config restores the full model, because the frozen weights
    come from ``pretrained_model_path`` (or from the configs with ``init_seed``).

    Inputs are RGB images in [-1, 1] (data preprocessor ``mean=[127.5] * 3, std=[127.5] * 3,
    bgr_to_rgb=True``); any size works (padded to a multiple of 64 inside, features cropped back).

    Args:
        pretrained_model_path (str, optional): Local SD2.1-base folder in diffusers layout
            (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``).
        arch (str | dict, optional): Instead of the folder, random weights of an architecture:
            ``'tiny'`` (the ``TINY_*`` configs of :mod:`mmseg_rass.models.diffusion`),
            ``'sd21'`` (SD2.1-base shapes, for parameter counts on the meta device), or
            ``dict(unet=..., vae=..., text_encoder=...)`` of constructor arguments (the text
            encoder then uses the tiny byte-level tokenizer).
        init_seed (int): Seed for every random initialisation done here (random frozen weights
            from the configs, LoRA), so a rebuilt model has the same frozen part.
        scr_lora (str, optional): SCR LoRA safetensors file (``mmseg_rass.lora``) merged into
            the UNet before the segmentation LoRA is added.
        lora_rank (int): Rank of the segmentation LoRA. Default 4.
        lora_targets (list[str], optional): UNet modules the segmentation LoRA targets; default
            ``UNET_LORA_TARGETS`` without ``conv_in`` (trained fully instead).
        lora_init (str | bool): peft ``init_lora_weights``. Default ``'gaussian'``.
        class_names (str | Sequence[str], optional): Class names for the text conditioning, or
            the name of a registered dataset whose ``METAINFO['classes']`` to use; None uses the
            empty prompt (context (1, 77, D)); names give one pooled prompt embedding per class
            (context (1, N, D)).
        prompt_template (str): Prompt for each class name.
        timestep (int): UNet timestep of the single pass. Default 1.
        out_channels (int): Channels of every output map. Default 512.
        proj_mid_channels (int, optional): Bottleneck width of the projections
            (``out_channels // 4`` if None).
        vae_feature_indices (Sequence[int]): VAE encoder down blocks whose outputs are used.
        unet_feature_indices (Sequence[int]): UNet up blocks whose outputs are used.
        gradient_checkpointing (bool): Recompute UNet activations in backward.
        dtype (str): ``'float32'`` or ``'bfloat16'``: storage of the frozen weights and compute
            type of the VAE/UNet pass (autocast); LoRA, ``conv_in``, projections stay float32.
        out_strides (Sequence[int], optional): Stride of the map returned at each output index;
            strides may repeat (the same map is returned at each of those indices). None returns
            every available stride once, ascending (4, 8, 16, 32). Features of strides not
            listed get no projection.
        pretrained (str, optional): mmseg's backbone-weights convention (set by a segmentor's
            ``pretrained=``); it names weights of the backbone this one replaces, so it is
            ignored with one warning. The SD weights come from ``pretrained_model_path``.
        init_cfg (dict, optional): mmengine init config; ignored with one warning (mmengine
            initialisers would overwrite the frozen SD weights). Trained RASS weights load with
            ``load_from`` / ``--resume``.
    """

    def __init__(self,
                 pretrained_model_path=None,
                 arch=None,
                 init_seed=0,
                 scr_lora=None,
                 lora_rank=4,
                 lora_targets=None,
                 lora_init='gaussian',
                 class_names=None,
                 prompt_template='a photo of a {}',
                 timestep=1,
                 out_channels=512,
                 proj_mid_channels=None,
                 vae_feature_indices=(1, 3),
                 unet_feature_indices=(0, 1, 2, 3),
                 gradient_checkpointing=False,
                 dtype='float32',
                 out_strides=None,
                 pretrained=None,
                 init_cfg=None):
        super().__init__(init_cfg=None)
        for key, value in (('pretrained', pretrained), ('init_cfg', init_cfg)):
            if value is not None:
                print_log(f'RASSBackbone: ignoring {key}={value!r} (meant for the backbone it '
                          'replaces); the Stable Diffusion weights come from '
                          'pretrained_model_path or arch, trained RASS weights from load_from '
                          'or --resume', logger='current', level=logging.WARNING)
        arch_name = arch if isinstance(arch, str) else json.dumps(arch, sort_keys=True)
        arch = resolve_arch('RASSBackbone', pretrained_model_path, arch)
        if dtype not in _DTYPES:
            raise ValueError(f'RASSBackbone: dtype must be one of {list(_DTYPES)}, got {dtype!r}')
        if scr_lora is not None and not osp.isfile(scr_lora):
            raise FileNotFoundError(
                f'RASSBackbone: SCR LoRA file {scr_lora} not found: train SCR with '
                'configs/scr/ and pass the exported .safetensors file as `scr_lora`, or set '
                'scr_lora=None to start from plain Stable Diffusion')
        self.base_model = dict(pretrained_model_path=pretrained_model_path, scr_lora=scr_lora,
                               arch=arch_name if arch else None,
                               init_seed=init_seed if arch else None)
        self.timestep = timestep
        self.compute_dtype = _DTYPES[dtype]

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            unet = build_unet(pretrained_model_path, arch.get('unet'))
            vae = build_vae(pretrained_model_path, arch.get('vae'))
            text_encoder, tokenizer = build_text_encoder(pretrained_model_path,
                                                         arch.get('text_encoder'))
            self.register_buffer(
                'text_embeds',
                self._encode_text(text_encoder, tokenizer, class_names, prompt_template),
                persistent=False)
            del text_encoder, tokenizer
            if scr_lora is not None:
                unet = merge_scr_lora(unet, scr_lora)
            unet.requires_grad_(False)
            targets = lora_targets or [t for t in UNET_LORA_TARGETS if t != 'conv_in']
            unet.add_adapter(make_lora_config(lora_rank, targets, lora_init), adapter_name='seg')

        self.vae_encoder = vae.encoder
        self.vae_quant_conv = vae.quant_conv
        self.latent_scale = vae.config.scaling_factor
        del vae
        self.unet = unet
        self.unet.requires_grad_(False)
        for name, param in self.unet.named_parameters():
            param.requires_grad = '.lora_' in name or name.startswith('conv_in.')
            if not param.requires_grad:
                param.data = param.data.to(self.compute_dtype)
        self.vae_encoder.requires_grad_(False).to(self.compute_dtype)
        if self.vae_quant_conv is not None:
            self.vae_quant_conv.requires_grad_(False).to(self.compute_dtype)
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()

        # Strides and channels from the modules themselves.
        vae_blocks, up_blocks = self.vae_encoder.down_blocks, self.unet.up_blocks
        vae_strides = _stride_of_blocks(vae_blocks, 'downsamplers')
        latent_stride = vae_strides[-1]
        bottom = latent_stride * _stride_of_blocks(self.unet.down_blocks, 'downsamplers')[-1]
        up_factors = _stride_of_blocks(up_blocks, 'upsamplers')
        vae_strides = {i: vae_strides[i] for i in vae_feature_indices}
        unet_strides = {i: bottom // up_factors[i] for i in unet_feature_indices}
        available = tuple(sorted(set(vae_strides.values()) | set(unet_strides.values())))
        self.out_strides = available if out_strides is None else tuple(out_strides)
        unknown = [s for s in self.out_strides if s not in available]
        if unknown or not self.out_strides:
            raise ValueError(f'RASSBackbone: out_strides={out_strides!r} must list strides of '
                             f'the features, which are {list(available)}')
        self.vae_feature_indices = tuple(i for i, s in vae_strides.items()
                                         if s in self.out_strides)
        self.unet_feature_indices = tuple(i for i, s in unet_strides.items()
                                          if s in self.out_strides)
        feat_strides = [vae_strides[i] for i in self.vae_feature_indices] + [
            unet_strides[i] for i in self.unet_feature_indices]
        feat_channels = [_block_out_channels(vae_blocks[i]) for i in self.vae_feature_indices] + [
            _block_out_channels(up_blocks[i]) for i in self.unet_feature_indices]
        self.size_divisor = bottom
        self.feature_strides = tuple(feat_strides)
        self.out_channels = out_channels
        self.projections = nn.ModuleList(
            BottleneckProjection(c, out_channels, proj_mid_channels) for c in feat_channels)
        save_trainable_only(self, self.base_model)

    @staticmethod
    @torch.no_grad()
    def _encode_text(text_encoder, tokenizer, class_names, prompt_template):
        """Context (1, L, D): empty-prompt hidden states, or one pooled embedding per class."""
        if isinstance(class_names, str):
            dataset_cls = DATASETS.get(class_names)
            if dataset_cls is None:
                raise KeyError(f'RASSBackbone: class_names={class_names!r} is neither a list of '
                               'names nor a registered dataset type')
            class_names = dataset_cls.METAINFO['classes']
        prompts = [''] if class_names is None else [prompt_template.format(c) for c in class_names]
        device = next(text_encoder.parameters()).device
        ids = tokenizer(prompts, padding='max_length', max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors='pt').input_ids.to(device)
        out = text_encoder(input_ids=ids)
        if class_names is None:
            return out.last_hidden_state.float()
        return out.pooler_output[None].float()

    def train(self, mode=True):
        """Set train mode; the frozen VAE encoder and UNet stay in eval mode."""
        super().train(mode)
        self.vae_encoder.eval()
        self.unet.eval()
        return self

    def forward(self, x):
        """Extract multi-scale features.

        Args:
            x (Tensor): Images (B, 3, H, W), RGB in [-1, 1].

        Returns:
            tuple[Tensor]: One map per entry s of ``out_strides`` (4, 8, 16, 32 by default),
            (B, out_channels, ceil(H / s), ceil(W / s)), float32.
        """
        b, _, h, w = x.shape
        d = self.size_divisor
        x = F.pad(x, (0, (d - w % d) % d, 0, (d - h % d) % d))
        if self.compute_dtype == torch.float32:
            amp = contextlib.nullcontext()
        else:
            amp = torch.autocast(x.device.type, dtype=self.compute_dtype)
        with amp:
            vae_out, handles = _capture_outputs(self.vae_encoder.down_blocks,
                                                self.vae_feature_indices)
            try:
                with torch.no_grad():
                    moments = self.vae_encoder(x.to(self.compute_dtype))
                    if self.vae_quant_conv is not None:
                        moments = self.vae_quant_conv(moments)
            finally:
                for handle in handles:
                    handle.remove()
            latent = moments.chunk(2, dim=1)[0].float() * self.latent_scale
            context = self.text_embeds.expand(b, -1, -1)
            unet_out, handles = _capture_outputs(self.unet.up_blocks, self.unet_feature_indices)
            try:
                timestep = torch.tensor(self.timestep, device=x.device)
                self.unet(latent, timestep, encoder_hidden_states=context)
            finally:
                for handle in handles:
                    handle.remove()
        feats = [vae_out[i] for i in self.vae_feature_indices] + [
            unet_out[i] for i in self.unet_feature_indices]
        outs = {}
        for feat, stride, proj in zip(feats, self.feature_strides, self.projections):
            if feat.shape[-2:] != (x.shape[-2] // stride, x.shape[-1] // stride):
                raise RuntimeError(f'RASSBackbone: feature of shape {tuple(feat.shape)} does '
                                   f'not match its computed stride {stride}')
            y = proj(feat.float())
            outs[stride] = y if stride not in outs else outs[stride] + y
        return tuple(outs[s][..., :math.ceil(h / s), :math.ceil(w / s)] for s in self.out_strides)
