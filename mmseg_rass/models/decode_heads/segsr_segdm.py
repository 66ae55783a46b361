"""SegSR's segmentation diffusion model (SegDM): DDP-style diffusion over the label map."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample


def cosine_log_snr(u, ns=0.0002, ds=0.00025):
    """Cosine schedule as log-SNR of continuous time ``u`` in [0, 1] (DDP / bit diffusion).

    log SNR(u) = −log(cos((u + ns) / (1 + ds) · π/2)^−2 − 1), the inner term clamped at 1e-5.
    """
    inner = torch.cos((u + ns) / (1 + ds) * math.pi * 0.5)**-2 - 1
    return -torch.log(inner.clamp(min=1e-5))


def alpha_sigma(log_snr):
    """Signal and noise scales (α, σ) = (√sigmoid(λ), √sigmoid(−λ)) of log-SNR λ."""
    return torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()


class LearnedSinusoidalEmbedding(nn.Module):
    """[x, sin(2π·x·w), cos(2π·x·w)] with learned frequencies w (dim / 2 of them).

    Args:
        dim (int): Even number of sinusoidal features; the output has ``dim + 1`` features.
    """

    def __init__(self, dim):
        super().__init__()
        if dim % 2:
            raise ValueError(f'LearnedSinusoidalEmbedding: dim must be even, got {dim}')
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, x):
        """x (B,) → (B, dim + 1)."""
        freqs = x[:, None] * self.weights[None] * 2 * math.pi
        return torch.cat([x[:, None], freqs.sin(), freqs.cos()], dim=-1)


class TimeConvBlock(nn.Module):
    """Residual 3×3 conv → norm → time scale/shift (FiLM) → GELU, as DDP's time-conditioned convs.

    Args:
        channels (int): Feature channels.
        time_dim (int): Time-embedding width.
        norm_cfg (dict): Norm layer config.
    """

    def __init__(self, channels, time_dim, norm_cfg):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = build_norm_layer(norm_cfg, channels)[1]
        self.time_proj = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * channels))

    def forward(self, x, time_emb):
        """x (B, C, h, w), time_emb (B, time_dim) → (B, C, h, w)."""
        scale, shift = self.time_proj(time_emb)[..., None, None].chunk(2, dim=1)
        return x + F.gelu(self.norm(self.conv(x)) * (1 + scale) + shift)


@MODELS.register_module()
class SegDM(BaseModule):
    """Label-map diffusion conditioned on image features (DDP), with an optional extra condition.

    Features of any mmseg backbone (/neck) are projected to ``channels``, resized to the finest
    level and merged (1×1 conv). The label map is embedded (class embedding, ignore → an extra
    class), squashed to [−s, s] (``(sigmoid(e)·2 − 1)·bit_scale``) and diffused with the cosine
    log-SNR schedule over continuous time u ∈ [0, 1]. The noisy map is concatenated with the
    features (1×1 conv back to ``channels``); the bridge condition, when present, is added
    through a zero-initialised 1×1 conv; ``num_time_blocks`` residual convs modulated by the
    time embedding (learned sinusoidal embedding of log-SNR → MLP) follow, then any single-input
    mmseg decode head gives class logits. Training: CE on those logits (the decode head's own
    loss). Sampling: DDIM over the map — each step embeds the argmax prediction as the clean
    map and moves to the next time.

    Args:
        in_channels (Sequence[int]): Channels of the feature levels used.
        channels (int): Width of the merged features, the map embedding and the head input.
        num_classes (int): Number of classes (the label ``ignore_index`` is mapped to an extra
            embedding).
        decode_head (dict): Any mmseg decode head taking one feature map (e.g. ``FCNHead``);
            ``in_channels``, ``in_index`` and ``num_classes`` are set here.
        in_index (Sequence[int], optional): Which feature levels to use; default all, in order.
        bit_scale (float): Scale s of the map embedding. Default 0.01 (DDP's Cityscapes value).
        cond_channels (int): Channels of the bridge condition; 0 = none.
        num_time_blocks (int): Time-modulated residual conv blocks before the head. Default 2.
        learned_sinusoidal_dim (int): Sinusoidal features of the time embedding. Default 16.
        sample_range (tuple[float]): Time range of standalone sampling (:meth:`sample` goes from
            the upper to the lower end); DDP trains on the same range. Default (0, 0.999).
        ignore_index (int): Label of ignored pixels. Default 255.
        norm_cfg (dict): Norm layers of the merge and time blocks. Default GroupNorm, 8 groups.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels,
                 channels,
                 num_classes,
                 decode_head,
                 in_index=None,
                 bit_scale=0.01,
                 cond_channels=0,
                 num_time_blocks=2,
                 learned_sinusoidal_dim=16,
                 sample_range=(0, 0.999),
                 ignore_index=255,
                 norm_cfg=dict(type='GN', num_groups=8),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels = list(in_channels)
        self.in_index = list(in_index) if in_index is not None else list(range(len(in_channels)))
        if len(self.in_index) != len(self.in_channels):
            raise ValueError(f'SegDM: in_index {self.in_index} and in_channels '
                             f'{self.in_channels} differ in length')
        self.channels = channels
        self.num_classes = int(num_classes)
        self.bit_scale = bit_scale
        self.cond_channels = int(cond_channels)
        self.sample_range = tuple(sample_range)
        self.ignore_index = ignore_index

        self.laterals = nn.ModuleList(
            ConvModule(c, channels, 1, norm_cfg=norm_cfg, act_cfg=None) for c in self.in_channels)
        self.merge = ConvModule(channels * len(self.in_channels), channels, 1,
                                norm_cfg=norm_cfg, act_cfg=None)
        self.embedding = nn.Embedding(self.num_classes + 1, channels)
        self.transform = nn.Conv2d(2 * channels, channels, 1)
        if self.cond_channels:
            # zero, and made without drawing random numbers: the rest is initialised as without
            self.cond_proj = nn.utils.skip_init(nn.Conv2d, self.cond_channels, channels, 1,
                                                device=self.transform.weight.device)
            nn.init.zeros_(self.cond_proj.weight)
            nn.init.zeros_(self.cond_proj.bias)
        time_dim = 4 * channels
        self.time_mlp = nn.Sequential(
            LearnedSinusoidalEmbedding(learned_sinusoidal_dim),
            nn.Linear(learned_sinusoidal_dim + 1, time_dim), nn.GELU(),
            nn.Linear(time_dim, time_dim))
        self.time_blocks = nn.ModuleList(
            TimeConvBlock(channels, time_dim, norm_cfg) for _ in range(num_time_blocks))

        head = dict(decode_head)
        for key, value in (('in_channels', channels), ('in_index', 0),
                           ('num_classes', self.num_classes)):
            if key in head and head[key] != value:
                raise ValueError(f'SegDM: decode_head.{key}={head[key]!r} but SegDM sets it to '
                                 f'{value!r} (SegDM num_classes/channels); remove it from '
                                 'decode_head or make them agree')
            head[key] = value
        self.decode_head = MODELS.build(head)
        if getattr(self.decode_head, 'ignore_index', ignore_index) != ignore_index:
            raise ValueError(f'SegDM: decode_head.ignore_index={self.decode_head.ignore_index} '
                             f'differs from ignore_index={ignore_index}')

    # ----------------------------------------------------------------- features, map
    def fuse_features(self, feats):
        """Backbone/neck outputs → merged features (B, channels, h, w) at the finest level used."""
        feats = [feats[i] for i in self.in_index]
        size = feats[0].shape[-2:]
        outs = [
            F.interpolate(lat(f), size=size, mode='bilinear', align_corners=False)
            if f.shape[-2:] != size else lat(f) for lat, f in zip(self.laterals, feats)
        ]
        return self.merge(torch.cat(outs, dim=1))

    def check_labels(self, labels):
        """Raise one clear error when labels exceed ``num_classes`` (other than ignore)."""
        valid = labels[labels != self.ignore_index]
        if valid.numel() and (int(valid.max()) >= self.num_classes or int(valid.min()) < 0):
            raise ValueError(
                f'SegDM: ground-truth labels range over [{int(valid.min())}, {int(valid.max())}] '
                f'but num_classes={self.num_classes} (ignore_index={self.ignore_index}): set '
                "model.segdm.num_classes to the dataset's number of classes")

    def embed(self, labels):
        """Labels (B, h, w) (``num_classes`` = ignore) → map (B, channels, h, w) in [−s, s]."""
        emb = self.embedding(labels).permute(0, 3, 1, 2)
        return (torch.sigmoid(emb) * 2 - 1) * self.bit_scale

    def encode_labels(self, labels, size):
        """GT (B, H, W) → clean map (B, channels, *size): nearest resize, ignore → extra class."""
        self.check_labels(labels)
        small = F.interpolate(labels[:, None].float(), size=size, mode='nearest')[:, 0].long()
        small[small == self.ignore_index] = self.num_classes
        return self.embed(small)

    def noise_map(self, clean_map, times, noise):
        """m_u = α(u)·m_0 + σ(u)·ε for times u (B,)."""
        alpha, sigma = alpha_sigma(cosine_log_snr(times).view(-1, 1, 1, 1))
        return alpha * clean_map + sigma * noise

    # ----------------------------------------------------------------- denoiser
    def forward(self, feat, noisy_map, times, cond=None):
        """Class logits of the clean map.

        Args:
            feat (Tensor): Merged features (B, channels, h, w) (:meth:`fuse_features`).
            noisy_map (Tensor): m_u (B, channels, h, w).
            times (Tensor): (B,) continuous times u in [0, 1].
            cond (Tensor, optional): Bridge condition (B, cond_channels, h, w); required iff
                ``cond_channels > 0``.

        Returns:
            Tensor: Logits (B, num_classes, h', w') at the decode head's output size.
        """
        if (cond is None) != (self.cond_channels == 0):
            raise ValueError(f'SegDM: built with cond_channels={self.cond_channels}, so the '
                             f'condition must be {"given" if self.cond_channels else "None"}')
        x = self.transform(torch.cat([feat, noisy_map], dim=1))
        if cond is not None:
            x = x + self.cond_proj(cond)
        time_emb = self.time_mlp(cosine_log_snr(times))
        for block in self.time_blocks:
            x = block(x, time_emb)
        return self.decode_head([x])

    def loss(self, logits, labels):
        """The decode head's loss (CE by default) of logits against labels (B, H, W)."""
        self.check_labels(labels)
        samples = [SegDataSample(gt_sem_seg=PixelData(data=lab[None])) for lab in labels]
        return self.decode_head.loss_by_feat(logits, samples)

    # ----------------------------------------------------------------- sampling
    def ddim_step(self, noisy_map, logits, time_now, time_next):
        """One DDIM step of the map from u=``time_now`` to ``time_next`` (floats or (B,) tensors).

        The clean-map estimate is the embedding of the argmax class (resized to the map size).
        """
        labels = logits.argmax(dim=1)
        if labels.shape[-2:] != noisy_map.shape[-2:]:
            labels = F.interpolate(labels[:, None].float(), size=noisy_map.shape[-2:],
                                   mode='nearest')[:, 0].long()
        pred = self.embed(labels)
        now = torch.as_tensor(time_now, dtype=noisy_map.dtype, device=noisy_map.device)
        nxt = torch.as_tensor(time_next, dtype=noisy_map.dtype, device=noisy_map.device)
        alpha, sigma = alpha_sigma(cosine_log_snr(now.reshape(-1, 1, 1, 1)))
        alpha_next, sigma_next = alpha_sigma(cosine_log_snr(nxt.reshape(-1, 1, 1, 1)))
        pred_noise = (noisy_map - alpha * pred) / sigma.clamp(min=1e-8)
        return alpha_next * pred + sigma_next * pred_noise

    def sample_times(self, num_steps):
        """DDIM time pairs [(u_k, u_{k+1})] from ``sample_range[1]`` down to ``sample_range[0]``."""
        lo, hi = self.sample_range
        grid = [hi - (hi - lo) * k / num_steps for k in range(num_steps + 1)]
        return list(zip(grid[:-1], grid[1:]))

    @torch.no_grad()
    def sample(self, feat, num_steps, noise, cond=None):
        """Segment alone (no bridge): DDIM over the map from noise.

        Args:
            feat (Tensor): Merged features (B, channels, h, w).
            num_steps (int): DDIM steps.
            noise (Tensor): Starting map (B, channels, h, w) (seed it for reproducible outputs).
            cond (Tensor, optional): A fixed condition for every step.

        Returns:
            Tensor: Logits of the last step (B, num_classes, h', w').
        """
        noisy_map, logits = noise, None
        for now, nxt in self.sample_times(num_steps):
            times = torch.full((feat.shape[0], ), now, device=feat.device)
            logits = self(feat, noisy_map, times, cond)
            noisy_map = self.ddim_step(noisy_map, logits, now, nxt)
        return logits
