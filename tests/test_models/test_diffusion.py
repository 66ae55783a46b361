"""Stable Diffusion part builders: tiny offline builds, SD2.1 shapes on meta, clear errors."""
import pytest
import torch

from mmseg_rass.models import diffusion


def test_tiny_parts_build_offline_and_chain():
    torch.manual_seed(0)
    vae = diffusion.build_vae(config=diffusion.TINY_VAE_CONFIG)
    unet = diffusion.build_unet(config=diffusion.TINY_UNET_CONFIG)
    encoder, tokenizer = diffusion.build_text_encoder(config=diffusion.TINY_TEXT_ENCODER_CONFIG)
    scheduler = diffusion.build_scheduler()
    assert len(vae.encoder.down_blocks) == 4 and len(unet.up_blocks) == 4
    assert [type(b).__name__ for b in unet.up_blocks] == list(
        diffusion.SD21_UNET_CONFIG['up_block_types'])
    ids = tokenizer(['car'], padding='max_length', max_length=77, return_tensors='pt').input_ids
    assert ids.shape == (1, 77)
    # byte-level vocabulary without merges: one token per character, </w> on the last one
    assert tokenizer.convert_ids_to_tokens(ids[0, :5].tolist()) == [
        '<|startoftext|>', 'c', 'a', 'r</w>', '<|endoftext|>']
    text = encoder(ids)[0]
    assert text.shape == (1, 77, diffusion.TINY_UNET_CONFIG['cross_attention_dim'])
    latent = vae.encode(torch.rand(1, 3, 32, 64) * 2 - 1).latent_dist.mode()
    assert latent.shape == (1, 4, 4, 8)
    eps = unet(latent, 1, encoder_hidden_states=text).sample
    assert eps.shape == latent.shape
    assert vae.decode(latent).sample.shape == (1, 3, 32, 64)
    assert scheduler.alphas_cumprod.shape == (1000, )
    assert scheduler.config.prediction_type == 'epsilon'


def test_sd21_unet_on_meta_has_sd21_size():
    with torch.device('meta'):
        unet = diffusion.build_unet(config=diffusion.SD21_UNET_CONFIG)
    # SD2.1-base UNet: 865.9M parameters
    assert 865e6 < sum(p.numel() for p in unet.parameters()) < 866e6


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match='exactly one'):
        diffusion.build_unet()
    with pytest.raises(ValueError, match='exactly one'):
        diffusion.build_vae(pretrained_model_path=str(tmp_path), config={})
    with pytest.raises(FileNotFoundError, match=r'unet.*stable-diffusion-2-1-base'):
        diffusion.build_unet(pretrained_model_path=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='text_encoder'):
        diffusion.build_text_encoder(pretrained_model_path=str(tmp_path))


def test_resolve_arch():
    assert diffusion.resolve_arch('X', '/sd', None) == {}
    assert diffusion.resolve_arch('X', None, 'tiny')['unet'] is diffusion.TINY_UNET_CONFIG
    custom = dict(unet={}, vae={}, text_encoder={})
    assert diffusion.resolve_arch('X', None, custom) is custom
    with pytest.raises(ValueError, match='SCRRestorer: pass exactly one of'):
        diffusion.resolve_arch('SCRRestorer', '/sd', 'tiny')
    with pytest.raises(ValueError, match='SCRRestorer: pass exactly one of'):
        diffusion.resolve_arch('SCRRestorer', None, None)
    with pytest.raises(ValueError, match="`arch` must be one of \\['sd21', 'small', 'tiny'\\].*'huge'"):
        diffusion.resolve_arch('SCRRestorer', None, 'huge')


def test_tiny_tokenizer_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import pickle
    import tempfile
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))  # where mkdtemp writes
    (tmp_path / 'tmp').mkdir()
    tokenizer = diffusion.build_tiny_tokenizer()
    assert list((tmp_path / 'tmp').iterdir()) == []
    # its vocabulary is in memory: it works (and pickles) after the folder is gone
    kept = diffusion.build_tiny_tokenizer(str(tmp_path / 'kept'))
    assert (tmp_path / 'kept' / 'vocab.json').is_file()
    assert tokenizer(['car road']).input_ids == kept(['car road']).input_ids
    assert pickle.loads(pickle.dumps(tokenizer))(['road']).input_ids == kept(['road']).input_ids
