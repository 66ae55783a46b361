"""SCR LoRA file: save -> load -> merge round trip and clear errors on foreign files."""
import copy

import pytest
import torch
from safetensors.torch import save_file

from mmseg_rass import lora
from mmseg_rass.models import diffusion


@pytest.fixture(scope='module')
def trained_unet():
    torch.manual_seed(0)
    base = diffusion.build_unet(config=diffusion.TINY_UNET_CONFIG)
    unet = copy.deepcopy(base)
    config = lora.make_lora_config(rank=4)
    unet.add_adapter(config)
    with torch.no_grad():  # stand in for training: B != 0 and a changed conv_in
        for name, param in unet.named_parameters():
            if 'lora_B' in name:
                param.normal_(0, 0.05)
        unet.conv_in.base_layer.weight.add_(0.1)
    return base, unet, config


def _run(unet):
    gen = torch.Generator().manual_seed(1)
    latent = torch.randn(1, 4, 8, 8, generator=gen)
    text = torch.randn(1, 7, 32, generator=gen)
    with torch.no_grad():
        return unet(latent, 1, encoder_hidden_states=text).sample


def test_config_matches_design():
    config = lora.make_lora_config()
    assert config.r == 4 and config.init_lora_weights == 'gaussian'
    assert set(config.target_modules) == set(lora.UNET_LORA_TARGETS)
    assert 'conv_out' not in lora.UNET_LORA_TARGETS and 'conv_in' in lora.UNET_LORA_TARGETS


def test_save_load_merge_round_trip(trained_unet, tmp_path):
    base, unet, config = trained_unet
    path = tmp_path / 'scr_lora.safetensors'
    lora.save_scr_lora(path, unet, config)

    loaded_config, lora_state, conv_in_state = lora.load_scr_lora(path)
    assert loaded_config.to_dict()['target_modules'] == config.to_dict()['target_modules']
    assert loaded_config.r == 4 and loaded_config.init_lora_weights == 'gaussian'
    assert set(conv_in_state) == {'weight', 'bias'}
    assert torch.equal(conv_in_state['weight'], unet.conv_in.base_layer.weight)
    assert all('lora_' in k and '.default' not in k for k in lora_state)
    assert 'down_blocks.0.attentions.0.proj_in.lora_A.weight' in lora_state

    reference = _run(unet)
    merged = lora.merge_scr_lora(copy.deepcopy(base), path)
    assert type(merged).__name__ == 'UNet2DConditionModel'
    assert not any('lora_' in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_run(merged), reference, atol=1e-5, rtol=1e-5)
    # exact when re-attached as an adapter instead of merged
    attached = lora.load_scr_lora_into(copy.deepcopy(base), loaded_config, lora_state, conv_in_state)
    assert torch.equal(_run(attached), reference)
    assert not torch.allclose(_run(base), reference)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='export_scr_lora'):
        lora.load_scr_lora(tmp_path / 'nope.safetensors')
    foreign = tmp_path / 'foreign.safetensors'
    save_file({'x': torch.zeros(1)}, str(foreign), metadata={'format': 'pt'})
    with pytest.raises(ValueError, match='not an SCR LoRA file'):
        lora.load_scr_lora(foreign)
    garbage = tmp_path / 'garbage.safetensors'
    garbage.write_bytes(b'not a safetensors file')
    with pytest.raises(ValueError, match='not a safetensors file'):
        lora.load_scr_lora(garbage)
