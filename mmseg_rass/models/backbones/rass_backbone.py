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
from mmseg.registry import MODELS

from ...lora import REFERENCE_LORA_ALPHA, UNET_LORA_TARGETS, make_lora_config, merge_scr_lora
from ..diffusion import (build_text_encoder, build_unet, build_vae, evaluation_generator,
                         posterior_latent, resolve_arch)
from ..prompts import PromptConditioner, build_prompt_source, resolve_class_names
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


def square_windows(height, width):
    """The RASS reference's sliding windows over an (H, W) image, in its loop order.

    Squares whose side is the shorter image side, stride equal to that side, the last window of
    each row / column moved back to end at the border (``FeatureProjection.slide_forward`` of
    Ka1Guan/RASS): one window for a square image, overlapping windows otherwise.

    Returns:
        list[tuple[int, int, int, int]]: ``(y1, y2, x1, x2)`` of each window.
    """
    side = min(height, width)
    windows = []
    for i in range(-(-height // side)):  # ceil(H / side) rows of windows
        for j in range(-(-width // side)):
            y2, x2 = min(i * side + side, height), min(j * side + side, width)
            windows.append((y2 - side, y2, x2 - side, x2))
    return windows


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
    (peft ``merge_and_unload``), then adds a new segmentation LoRA (rank 4, alpha 8, the RASS
    code's targets including ``conv_in``). The text conditioning comes from a prompt source
    (:mod:`mmseg_rass.models.prompts`): prompts known in advance are encoded once by the frozen
    text encoder (kept as buffers, or looked up per image for ``tags``), and the text encoder is
    dropped unless a ``gt`` prompt needs it. One UNet pass at ``timestep`` on a sample of the VAE
    posterior (as the RASS code does) gives the features: VAE down-block outputs
    ``vae_feature_indices`` and UNet up-block outputs ``unet_feature_indices``; each is
    projected (:class:`BottleneckProjection`, GroupNorm) to ``out_channels`` and the projections
    are summed per stride. For SD2.1-base the strides are VAE[1] s4, VAE[3] s8, UNet up[0] s32
    (1280 ch), up[1] s16 (1280), up[2] s8 (640), up[3] s8 (320), so the outputs are 4 maps at
    strides 4, 8, 16, 32 (computed from the modules, not assumed). ``out_strides`` chooses which map each output index
    carries, so a head that reads one level (``in_index``) gets the stride it was designed for
    (e.g. ``(4, 8, 8, 8)``, the strides of a dilated ResNet-d8, for PSPNet/DeepLabV3(+)/OCRNet
    heads).

    Trainable: the segmentation LoRA, the UNet's ``conv_in`` (its LoRA and its base weights, as in
    the RASS code) and the projections. The VAE and the rest of the UNet are frozen and kept in
    eval mode. ``state_dict()`` holds only the trainable part (plus a ``base_model`` note in the
    metadata); loading such a checkpoint into a model built from the same config restores the
    full model, because the frozen weights come from ``pretrained_model_path`` (or from the
    configs with ``init_seed``).

    Inputs are RGB images in [-1, 1] (data preprocessor ``mean=[127.5] * 3, std=[127.5] * 3,
    bgr_to_rgb=True``); any size works (padded to a multiple of 64 inside, features cropped back).
    With ``slide_inference=True``, evaluation runs the reference's sliding windows instead
    (:func:`square_windows`: squares of the shorter side), and the output features of the
    windows are averaged where they overlap.

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
        lora_alpha (float): Its alpha (scale alpha / rank). Default 8 (peft's default, which
            the RASS code uses: scale 2).
        lora_targets (list[str], optional): UNet modules the segmentation LoRA targets; default
            ``UNET_LORA_TARGETS`` (the RASS code's list, ``conv_in`` included).
        lora_init (str | bool): peft ``init_lora_weights``. Default ``'gaussian'``.
        class_names (str | Sequence[str], optional): Dataset class names for the
            ``class_names`` / ``gt`` prompts, or a registered dataset type whose
            ``METAINFO['classes']`` to use.
        prompt (str | dict): Prompt source in training (``'empty'``, ``'class_names'``,
            ``'gt'``, ``dict(type='tags', cache=...)``, see :mod:`mmseg_rass.models.prompts`).
            Default ``'empty'``. Per-image sources (``gt``, ``tags``) need
            ``custom_hooks=[dict(type='RASSPromptHook')]`` (or :meth:`set_batch_prompts`).
        test_prompt (str | dict, optional): Prompt source at validation/test; None: ``prompt``
            (a ``gt`` prompt at test is an oracle and is logged as such).
        prompt_cache_dir (str, optional): Folder for precomputed prompt embeddings (tags).
        timestep (int): UNet timestep of the single pass. Default 1 (the RASS code).
        sample_posterior (bool): Sample the VAE posterior (the RASS code) instead of taking its
            mean; at evaluation the noise is seeded with ``init_seed``. Default True.
        out_channels (int): Channels of every output map. Default 512.
        proj_mid_channels (int, optional): Bottleneck width of the projections
            (``out_channels // 4`` if None).
        vae_feature_indices (Sequence[int]): VAE encoder down blocks whose outputs are used.
        unet_feature_indices (Sequence[int]): UNet up blocks whose outputs are used.
        gradient_checkpointing (bool): Recompute UNet activations in backward.
        dtype (str): ``'float32'`` or ``'bfloat16'``: storage of the frozen weights and compute
            type of the VAE/UNet pass (autocast); LoRA, ``conv_in``, projections stay float32.
        slide_inference (bool): In eval mode, run every window of :func:`square_windows`
            through the backbone and average the output features where windows overlap, as the
            RASS code evaluates (``backbone_in_size=(512, 512)``); output maps are then
            (B, out_channels, H // s, W // s) and window features are placed at
            ``y1 // s : y2 // s`` (nearest-resized to that slot when the window side is not a
            multiple of s). Training always runs the whole input. Default False: the whole
            input in one pass.
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
                 lora_alpha=REFERENCE_LORA_ALPHA,
                 lora_targets=None,
                 lora_init='gaussian',
                 class_names=None,
                 prompt='empty',
                 test_prompt=None,
                 prompt_cache_dir=None,
                 timestep=1,
                 sample_posterior=True,
                 out_channels=512,
                 proj_mid_channels=None,
                 vae_feature_indices=(1, 3),
                 unet_feature_indices=(0, 1, 2, 3),
                 gradient_checkpointing=False,
                 dtype='float32',
                 slide_inference=False,
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
        self.sample_posterior = sample_posterior
        self.slide_inference = slide_inference
        self.init_seed = init_seed
        self.compute_dtype = _DTYPES[dtype]

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            unet = build_unet(pretrained_model_path, arch.get('unet'))
            vae = build_vae(pretrained_model_path, arch.get('vae'))
            text_encoder, tokenizer = build_text_encoder(pretrained_model_path,
                                                         arch.get('text_encoder'))
            self._build_prompts(text_encoder.requires_grad_(False), tokenizer, class_names,
                                prompt, test_prompt, prompt_cache_dir)
            if scr_lora is not None:
                unet = merge_scr_lora(unet, scr_lora)
            unet.requires_grad_(False)
            unet.add_adapter(make_lora_config(lora_rank, lora_targets or UNET_LORA_TARGETS,
                                              lora_init, lora_alpha), adapter_name='seg')

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

    def _build_prompts(self, text_encoder, tokenizer, class_names, prompt, test_prompt,
                       cache_dir):
        """Prompt sources, their precomputed contexts (buffers) and, if needed, the encoder."""
        sources = dict(train=build_prompt_source(prompt, 'RASSBackbone'))
        sources['test'] = (sources['train'] if test_prompt is None else
                           build_prompt_source(test_prompt, 'RASSBackbone'))
        if class_names is not None:
            if not any(s.needs_class_names for s in sources.values()):
                raise ValueError('RASSBackbone: class_names are used by the \'class_names\' '
                                 'and \'gt\' prompts only, but the prompts are '
                                 f'{sources["train"].kind!r} / {sources["test"].kind!r}: set '
                                 "prompt='class_names' (or dict(type='class_names', pooled=True)"
                                 ' for one pooled embedding per class) or drop class_names')
            class_names = resolve_class_names(class_names, 'RASSBackbone')
        self.prompts = PromptConditioner(text_encoder, tokenizer, sources, class_names,
                                         cache_dir, owner='RASSBackbone')
        self.prompts.prepare()
        for use, name in (('train', 'text_embeds'), ('test', 'test_text_embeds')):
            static = None if sources[use].per_image else self.prompts.static_context(use)
            self.register_buffer(name, static, persistent=False)
        if self.prompts.needs_encoder:
            self.text_encoder = text_encoder
        else:
            self.prompts.text_encoder = None
        self._batch_context = None
        self._oracle_logged = False

    def set_batch_prompts(self, data_samples):
        """Encode the per-image prompts of the next batch (``gt`` / ``tags`` sources).

        Called by ``RASSPromptHook`` before every forward of the segmentor.

        Args:
            data_samples (list[SegDataSample] | None): The batch's samples (``img_path``
                metainfo for ``tags``, ``gt_sem_seg`` for ``gt``).
        """
        use = 'train' if self.training else 'test'
        source = self.prompts.sources[use]
        if not source.per_image:
            return
        if data_samples is None:
            raise ValueError(f'RASSBackbone: the {use} prompt {source.kind!r} is per image but '
                             'the batch has no data_samples')
        if source.oracle and not self.training and not self._oracle_logged:
            print_log(f'RASSBackbone: the test prompt is {source.describe()!r}, made from the GT '
                      'labels: these segmentation results are ORACLE numbers',
                      logger='current', level=30)
            self._oracle_logged = True
        device = self.projections[0].body[0].conv.weight.device
        self._batch_context, _ = self.prompts(use, data_samples, device)

    def clear_batch_prompts(self):
        """Forget the per-image prompts of the last batch."""
        self._batch_context = None

    def _context(self, batch_size):
        """Text context (B, L, D) of the current mode's prompt source."""
        use = 'train' if self.training else 'test'
        static = self.text_embeds if use == 'train' else self.test_text_embeds
        if static is not None:
            return static.expand(batch_size, -1, -1)
        context = self._batch_context
        if context is None or context.shape[0] != batch_size:
            kind = self.prompts.sources[use].kind
            raise RuntimeError(
                f'RASSBackbone: the {use} prompt {kind!r} is per image, but no prompts were set '
                f'for this batch of {batch_size}: add custom_hooks=[dict(type=\'RASSPromptHook\')] '
                'to the config (or call backbone.set_batch_prompts(data_samples) before the '
                'forward)')
        return context

    def train(self, mode=True):
        """Set train mode; the frozen VAE encoder, UNet (and text encoder) stay in eval mode."""
        super().train(mode)
        self.vae_encoder.eval()
        self.unet.eval()
        if hasattr(self, 'text_encoder'):
            self.text_encoder.eval()
        self._oracle_logged = False
        return self

    def forward(self, x):
        """Extract multi-scale features.

        Args:
            x (Tensor): Images (B, 3, H, W), RGB in [-1, 1].

        Returns:
            tuple[Tensor]: One map per entry s of ``out_strides`` (4, 8, 16, 32 by default),
            (B, out_channels, ceil(H / s), ceil(W / s)), float32; with ``slide_inference`` in
            eval mode (B, out_channels, H // s, W // s), averaged over the windows.
        """
        if self.slide_inference and not self.training:
            return self._forward_windows(x)
        return self._forward_whole(x)

    def _forward_windows(self, x):
        """Average the features of the reference's square windows where they overlap."""
        b, _, h, w = x.shape
        strides = sorted(set(self.out_strides))
        sums = {s: x.new_zeros(b, self.out_channels, h // s, w // s, dtype=torch.float32)
                for s in strides}
        counts = {s: x.new_zeros(1, 1, h // s, w // s, dtype=torch.float32) for s in strides}
        for y1, y2, x1, x2 in square_windows(h, w):
            feats = dict(zip(self.out_strides, self._forward_whole(x[..., y1:y2, x1:x2])))
            for s in strides:
                rows, cols = slice(y1 // s, y2 // s), slice(x1 // s, x2 // s)
                slot = (rows.stop - rows.start, cols.stop - cols.start)
                feat = feats[s] if feats[s].shape[-2:] == slot else F.interpolate(feats[s], slot)
                sums[s][..., rows, cols] += feat
                counts[s][..., rows, cols] += 1
        return tuple(sums[s] / counts[s] for s in self.out_strides)

    def _forward_whole(self, x):
        """Features of the whole input in one pass (padded to ``size_divisor`` inside)."""
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
            generator = None if self.training else evaluation_generator(x.device, self.init_seed)
            latent = posterior_latent(moments.float(), self.sample_posterior,
                                      generator) * self.latent_scale
            context = self._context(b)
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
