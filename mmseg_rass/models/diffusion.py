"""Stable Diffusion parts (VAE, UNet, CLIP text encoder + tokenizer, scheduler) from diffusers.

Every builder takes exactly one of ``pretrained_model_path`` (a local Stable Diffusion 2.1-base
folder in diffusers layout: ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``) or ``config`` (a dict of constructor arguments, e.g. the tiny configs below for
tests and demos, or :data:`SD21_UNET_CONFIG` for parameter counts on the ``meta`` device).
"""
import json
import os
import os.path as osp
import tempfile

SD21_REPO = 'stabilityai/stable-diffusion-2-1-base'

# Tiny configs with the block structure of SD2.1-base (random weights, CPU friendly).
TINY_UNET_CONFIG = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                      'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                    'CrossAttnUpBlock2D'),
    block_out_channels=(16, 32, 32, 32),
    layers_per_block=1,
    attention_head_dim=(2, 4, 4, 4),
    cross_attention_dim=32,
    norm_num_groups=8,
    use_linear_projection=True)

TINY_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=('DownEncoderBlock2D', ) * 4,
    up_block_types=('UpDecoderBlock2D', ) * 4,
    block_out_channels=(8, 16, 16, 16),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64)

TINY_TEXT_ENCODER_CONFIG = dict(
    vocab_size=515,  # 2 x 256 byte tokens (plain, end-of-word) + 3 special tokens
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    max_position_embeddings=77,
    projection_dim=32,
    bos_token_id=512,
    eos_token_id=513,
    pad_token_id=514)

# The project's pretrained miniature (tools/pretrain_tiny_sd.py): the tiny block structure,
# twice as wide, so that the VAE can learn the demo images (docs/tiny_sd.md).
SMALL_UNET_CONFIG = dict(TINY_UNET_CONFIG, sample_size=32, block_out_channels=(32, 64, 64, 64),
                         attention_head_dim=(2, 4, 4, 4))
SMALL_VAE_CONFIG = dict(TINY_VAE_CONFIG, sample_size=256, block_out_channels=(16, 32, 32, 32))

# SD2.1-base UNet architecture (stabilityai/stable-diffusion-2-1-base, unet/config.json).
SD21_UNET_CONFIG = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                      'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                    'CrossAttnUpBlock2D'),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    attention_head_dim=(5, 10, 20, 20),
    cross_attention_dim=1024,
    use_linear_projection=True,
    norm_num_groups=32)

# SD2.1-base VAE and text encoder (OpenCLIP ViT-H text tower) architectures, for meta builds.
SD21_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=('DownEncoderBlock2D', ) * 4,
    up_block_types=('UpDecoderBlock2D', ) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=768)

SD21_TEXT_ENCODER_CONFIG = dict(
    vocab_size=49408,
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,
    num_attention_heads=16,
    max_position_embeddings=77,
    projection_dim=512,
    hidden_act='gelu')


ARCHS = dict(
    tiny=dict(unet=TINY_UNET_CONFIG, vae=TINY_VAE_CONFIG, text_encoder=TINY_TEXT_ENCODER_CONFIG),
    small=dict(unet=SMALL_UNET_CONFIG, vae=SMALL_VAE_CONFIG, text_encoder=TINY_TEXT_ENCODER_CONFIG),
    sd21=dict(unet=SD21_UNET_CONFIG, vae=SD21_VAE_CONFIG, text_encoder=SD21_TEXT_ENCODER_CONFIG))


def resolve_arch(owner, pretrained_model_path, arch):
    """Check the two ways to get SD parts and return the per-part constructor arguments.

    Args:
        owner (str): class name for error messages.
        pretrained_model_path (str | None): local SD2.1-base folder.
        arch (str | dict | None): random weights instead: ``'tiny'``, ``'small'``, ``'sd21'``
            (see :data:`ARCHS`) or ``dict(unet=..., vae=..., text_encoder=...)``.

    Returns:
        dict: ``dict(unet=, vae=, text_encoder=)`` constructor arguments, empty for a folder
        (so ``arch.get('unet')`` is what the ``build_*`` functions take as ``config``).
    """
    if (pretrained_model_path is None) == (arch is None):
        raise ValueError(f'{owner}: pass exactly one of `pretrained_model_path` (a local '
                         'SD2.1-base folder) or `arch` (random weights: \'tiny\', \'sd21\' '
                         'or dict(unet=..., vae=..., text_encoder=...))')
    if arch is None:
        return {}
    resolved = ARCHS.get(arch) if isinstance(arch, str) else arch
    if not isinstance(resolved, dict) or set(resolved) != {'unet', 'vae', 'text_encoder'}:
        raise ValueError(f'{owner}: `arch` must be one of {sorted(ARCHS)} or a dict with keys '
                         f'unet, vae, text_encoder, got {arch!r}')
    return resolved


def _check_one(pretrained_model_path, config, what):
    if (pretrained_model_path is None) == (config is None):
        raise ValueError(f'build_{what}: pass exactly one of `pretrained_model_path` (a local '
                         f'Stable Diffusion 2.1-base folder) or `config` (a dict of constructor '
                         f'arguments), got pretrained_model_path={pretrained_model_path!r}, '
                         f'config={"given" if config is not None else None}')


def _subfolder(pretrained_model_path, sub):
    path = osp.join(osp.expanduser(str(pretrained_model_path)), sub)
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{path} not found: `pretrained_model_path` must be a local Stable Diffusion '
            f'2.1-base folder in diffusers layout with unet/, vae/, text_encoder/, tokenizer/ and '
            f'scheduler/ subfolders; download it once, e.g. `huggingface-cli download '
            f'{SD21_REPO} --local-dir <folder>`, and pass that folder')
    return path


def build_unet(pretrained_model_path=None, config=None):
    """Build the SD UNet (``UNet2DConditionModel``) from a local folder or a config dict.

    Args:
        pretrained_model_path (str, optional): Local SD2.1-base folder (uses ``unet/``).
        config (dict, optional): ``UNet2DConditionModel`` constructor arguments.

    Returns:
        UNet2DConditionModel: Maps latents (B, 4, h, w) + timestep + text (B, L, C) to (B, 4, h, w).
    """
    from diffusers import UNet2DConditionModel
    _check_one(pretrained_model_path, config, 'unet')
    if config is not None:
        return UNet2DConditionModel(**config)
    return UNet2DConditionModel.from_pretrained(_subfolder(pretrained_model_path, 'unet'))


def build_vae(pretrained_model_path=None, config=None):
    """Build the SD VAE (``AutoencoderKL``) from a local folder or a config dict.

    Args:
        pretrained_model_path (str, optional): Local SD2.1-base folder (uses ``vae/``).
        config (dict, optional): ``AutoencoderKL`` constructor arguments.

    Returns:
        AutoencoderKL: Encodes images (B, 3, H, W) in [-1, 1] to latents (B, 4, H/8, W/8).
    """
    from diffusers import AutoencoderKL
    _check_one(pretrained_model_path, config, 'vae')
    if config is not None:
        return AutoencoderKL(**config)
    return AutoencoderKL.from_pretrained(_subfolder(pretrained_model_path, 'vae'))


def _byte_level_vocab():
    """CLIP byte-level vocabulary without merges: every byte is a token (plain and ``</w>``)."""
    from tokenizers.pre_tokenizers import ByteLevel
    chars = sorted(ByteLevel.alphabet())  # the 256 characters CLIP's byte-level BPE maps bytes to
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + '</w>': len(chars) + i for i, c in enumerate(chars)})
    for name in ('<|startoftext|>', '<|endoftext|>', '<|pad|>'):
        vocab[name] = len(vocab)
    return vocab


def build_tiny_tokenizer(out_dir=None):
    """Write a byte-level CLIP tokenizer with no merges to a folder and load it (offline).

    Every character becomes one token; the last character of each word carries ``</w>``.

    Args:
        out_dir (str, optional): Where to write ``vocab.json`` / ``merges.txt``; if None, a
            temporary folder that is removed once the tokenizer has read it.

    Returns:
        CLIPTokenizer: 515 tokens; bos 512, eos 513, pad 514; model_max_length 77.
    """
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix='mmseg_rass_tiny_tokenizer_') as tmp:
            return build_tiny_tokenizer(tmp)
    from transformers import CLIPTokenizer
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump(_byte_level_vocab(), f)
    with open(osp.join(out_dir, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n')
    return CLIPTokenizer.from_pretrained(
        out_dir, pad_token='<|pad|>', model_max_length=77, local_files_only=True)


def build_text_encoder(pretrained_model_path=None, config=None):
    """Build the CLIP text encoder and its tokenizer from a local folder or a config dict.

    With ``config`` the tokenizer is the tiny byte-level one (:func:`build_tiny_tokenizer`), so
    ``config['vocab_size']`` must be at least 515.

    Args:
        pretrained_model_path (str, optional): Local SD2.1-base folder (uses ``text_encoder/``
            and ``tokenizer/``).
        config (dict, optional): ``CLIPTextConfig`` arguments.

    Returns:
        tuple[CLIPTextModel, CLIPTokenizer]: The encoder maps token ids (B, 77) to hidden states
        (B, 77, hidden_size); the tokenizer pads to 77 tokens.
    """
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    _check_one(pretrained_model_path, config, 'text_encoder')
    if config is not None:
        tokenizer = build_tiny_tokenizer()
        if config.get('vocab_size', CLIPTextConfig().vocab_size) < len(tokenizer):
            raise ValueError(f'build_text_encoder: config vocab_size={config.get("vocab_size")} '
                             f'is smaller than the tiny tokenizer ({len(tokenizer)} tokens)')
        return CLIPTextModel(CLIPTextConfig(**config)), tokenizer
    encoder = CLIPTextModel.from_pretrained(_subfolder(pretrained_model_path, 'text_encoder'))
    tokenizer = CLIPTokenizer.from_pretrained(_subfolder(pretrained_model_path, 'tokenizer'))
    return encoder, tokenizer


def build_scheduler(pretrained_model_path=None):
    """Build the DDPM noise scheduler of SD2.1-base (from the folder, else its default config).

    Args:
        pretrained_model_path (str, optional): Local SD2.1-base folder (uses ``scheduler/``).
            None gives SD's training schedule: 1000 steps, scaled-linear betas 0.00085-0.012,
            epsilon prediction.

    Returns:
        DDPMScheduler: With ``alphas_cumprod`` (1000,).
    """
    from diffusers import DDPMScheduler
    if pretrained_model_path is None:
        return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                             beta_schedule='scaled_linear', prediction_type='epsilon',
                             clip_sample=False, steps_offset=1)
    return DDPMScheduler.from_pretrained(_subfolder(pretrained_model_path, 'scheduler'))


def posterior_latent(moments, sample, generator=None):
    """Latent from the VAE encoder's moments (B, 2C, h, w) (after ``quant_conv``).

    The posterior mean, or — as diffusers' ``DiagonalGaussianDistribution.sample`` does — a
    sample ``mean + exp(logvar / 2)·ε`` with log-variance clamped to [-30, 20].

    Args:
        moments (Tensor): (B, 2C, h, w) mean and log-variance.
        sample (bool): Sample instead of taking the mean.
        generator (torch.Generator, optional): Source of ε (e.g. fixed for evaluation).

    Returns:
        Tensor: (B, C, h, w), not yet multiplied by the VAE scaling factor.
    """
    mean, logvar = moments.chunk(2, dim=1)
    if not sample:
        return mean
    from diffusers.utils.torch_utils import randn_tensor
    noise = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + (0.5 * logvar.clamp(-30.0, 20.0)).exp() * noise


def x0_from_output(prediction_type, model_output, noisy_latent, alpha, owner):
    """Clean-latent estimate ẑ0 from a UNet output at ᾱ_t ``alpha`` (broadcastable).

    Args:
        prediction_type (str): The scheduler's ``'epsilon'``, ``'v_prediction'`` or ``'sample'``.
        model_output (Tensor): The UNet output.
        noisy_latent (Tensor): z_t.
        alpha (Tensor): ᾱ_t, shaped to broadcast with ``noisy_latent``.
        owner (str): Model name for the error.
    """
    if prediction_type == 'epsilon':
        return (noisy_latent - (1 - alpha).sqrt() * model_output) / alpha.sqrt()
    if prediction_type == 'v_prediction':
        return alpha.sqrt() * noisy_latent - (1 - alpha).sqrt() * model_output
    if prediction_type == 'sample':
        return model_output
    raise ValueError(f'{owner}: scheduler prediction_type {prediction_type!r} is not supported')


def evaluation_generator(device, seed=0):
    """A generator with a fixed seed, so that posterior sampling at evaluation is repeatable."""
    import torch
    if torch.device(device).type == 'meta':
        return None
    return torch.Generator(device=device).manual_seed(seed)
