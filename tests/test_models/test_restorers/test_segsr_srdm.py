"""SRDM alone: zero-initialised conditioning, trainable sets, targets, sampling, errors."""
import re

import pytest
import torch
from mmseg.registry import MODELS

from mmseg_rass.models import diffusion
from mmseg_rass.models.trainable_state import trainable_names


def _srdm(**kwargs):
    return MODELS.build(dict(dict(type='SRDM', arch='tiny', init_seed=0), **kwargs))


@pytest.fixture(scope='module')
def srdm(one_torch_thread):
    return _srdm(cond_channels=3).eval()


@pytest.fixture(scope='module')
def plain(one_torch_thread):
    return _srdm(finetune='lora', lora_rank=2)


def test_new_conv_in_channels_start_at_zero_so_it_is_the_plain_unet(srdm):
    torch.manual_seed(0)  # same seed and build order as SRDM(init_seed=0)
    diffusion.build_vae(config=diffusion.TINY_VAE_CONFIG)
    encoder, tokenizer = diffusion.build_text_encoder(config=diffusion.TINY_TEXT_ENCODER_CONFIG)
    unet = diffusion.build_unet(config=diffusion.TINY_UNET_CONFIG)
    ids = tokenizer([''], padding='max_length', max_length=77, return_tensors='pt').input_ids
    text = encoder(ids)[0]
    gen = torch.Generator().manual_seed(1)
    z_t, z_lq = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 4, 8, 8, generator=gen)
    cond = torch.randn(2, 3, 8, 8, generator=gen)
    t = torch.tensor([10, 700])
    with torch.no_grad():
        ours = srdm(z_t, t, z_lq, cond)
        plain = unet(z_t, t, encoder_hidden_states=text.expand(2, -1, -1)).sample
    assert srdm.unet.conv_in.in_channels == 4 + 4 + 3
    torch.testing.assert_close(ours, plain)
    with torch.no_grad():  # once trained, the LQ latent and the condition matter
        srdm.unet.conv_in.weight[:, 4:].normal_(0, 0.1)
        changed = srdm(z_t, t, z_lq, cond)
        srdm.unet.conv_in.weight[:, 4:].zero_()
    assert not torch.allclose(changed, plain)


def test_lora_or_full_finetune_and_checkpoint_holds_trainable_only(plain):
    lora = plain
    names = trainable_names(lora)
    assert names and all('lora_' in n or n.startswith('unet.conv_in.') for n in names)
    assert 'unet.conv_in.weight' in names and lora.lora_config.r == 2
    assert not any(p.requires_grad for p in lora.vae.parameters())
    assert set(lora.state_dict()) == set(names)
    full = _srdm(finetune='full')
    assert all(p.requires_grad for p in full.unet.parameters())
    assert not any('lora_' in n for n in trainable_names(full))
    assert not any(k.startswith('vae.') for k in full.state_dict())
    # a checkpoint restores the whole model (frozen part rebuilt from init_seed), strictly
    with torch.no_grad():
        for p in full.unet.parameters():
            p.add_(0.01)
    rebuilt = _srdm(finetune='full')
    rebuilt.load_state_dict(full.state_dict(), strict=True)
    for (n, a), b in zip(full.named_parameters(), rebuilt.parameters()):
        assert torch.equal(a, b), n
    with pytest.raises(ValueError, match="finetune must be one of"):
        _srdm(finetune='partial')


@pytest.mark.parametrize('kind', ['epsilon', 'v_prediction', 'sample'])
def test_target_and_x0_estimate_agree_for_each_prediction_type(srdm, kind):
    srdm.scheduler.register_to_config(prediction_type=kind)
    try:
        gen = torch.Generator().manual_seed(2)
        z0, noise = torch.randn(3, 4, 8, 8, generator=gen), torch.randn(3, 4, 8, 8, generator=gen)
        t = torch.tensor([0, 500, 999])
        z_t = srdm.add_noise(z0, noise, t)
        alpha = srdm.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        torch.testing.assert_close(z_t, alpha.sqrt() * z0 + (1 - alpha).sqrt() * noise)
        target = {'epsilon': noise, 'sample': z0,
                  'v_prediction': alpha.sqrt() * noise - (1 - alpha).sqrt() * z0}[kind]
        assert srdm.loss(target, z0, noise, t) == 0  # a perfect output has zero loss ...
        torch.testing.assert_close(srdm.predict_x0(target, z_t, t), z0, atol=2e-4, rtol=1e-4)
    finally:  # ... and gives back the clean latent
        srdm.scheduler.register_to_config(prediction_type='epsilon')


def test_sampling_is_seeded_and_sampler_configurable(srdm):
    gen = torch.Generator().manual_seed(3)
    z_lq, cond = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 3, 8, 8, generator=gen)
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    a = srdm.sample(z_lq, 3, noise, cond)
    b = srdm.sample(z_lq, 3, noise.clone(), cond)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    sampler = srdm.make_sampler(4)
    assert sampler.timesteps.tolist() == [999, 749, 499, 249]  # trailing: starts at T-1
    ddim_cfg, srdm.sampler_cfg = srdm.sampler_cfg, dict(type='DPMSolverMultistepScheduler')
    try:
        assert torch.isfinite(srdm.sample(z_lq, 3, noise, cond)).all()
    finally:
        srdm.sampler_cfg = ddim_cfg
    with pytest.raises(ValueError, match='sigma-scaled'):
        _srdm(sampler=dict(type='EulerDiscreteScheduler'))
    with pytest.raises(ValueError, match='not a diffusers scheduler'):
        _srdm(sampler=dict(type='NoSuchScheduler'))


def test_condition_presence_and_missing_folder_are_clear_errors(srdm, plain, tmp_path):
    z = torch.zeros(1, 4, 8, 8)
    t = torch.tensor([1])
    with pytest.raises(ValueError, match='cond_channels=3, so the condition must be given'):
        srdm(z, t, z)
    with pytest.raises(ValueError, match='cond_channels=0, so the condition must be None'):
        plain(z, t, z, torch.zeros(1, 3, 8, 8))
    missing = tmp_path / 'no_sd'
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing)) + '/scheduler not found: '
                       '`pretrained_model_path` must be a local Stable Diffusion.*huggingface-cli'):
        MODELS.build(dict(type='SRDM', pretrained_model_path=str(missing)))


def test_train_vae_makes_only_the_autoencoder_loss_reach_the_vae(plain):
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    with pytest.raises(RuntimeError, match='needs train_vae=True'):
        plain.reconstruction_loss(img)
    model = _srdm(finetune='full', train_vae=True).train()
    assert all(p.requires_grad for p in model.vae.parameters()) and model.vae.training
    assert any(k.startswith('vae.') for k in model.state_dict())  # trained, so checkpointed
    model.reconstruction_loss(img).backward()
    assert model.vae.decoder.conv_out.weight.grad.abs().sum() > 0
    assert not model.encode(img).requires_grad  # diffusion targets never shape the latents
