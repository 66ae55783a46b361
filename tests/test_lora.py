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

    scr = lora.load_scr_lora(path)
    loaded_config, lora_state, conv_in_state = scr.lora_config, scr.lora_state, scr.conv_in_state
    assert scr.vae_lora_config is None and not scr.vae_lora_state
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
    attached = lora.load_scr_lora_into(copy.deepcopy(base), scr)
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


def test_reference_alpha_scale_and_targets():
    """OSEDiff / RASS build LoraConfig without lora_alpha: peft's 8, scale 2 at rank 4."""
    from peft import LoraConfig
    assert LoraConfig().lora_alpha == lora.REFERENCE_LORA_ALPHA == 8
    config = lora.make_lora_config()
    assert config.lora_alpha == 8 and config.r == 4
    unet = diffusion.build_unet(config=diffusion.TINY_UNET_CONFIG)
    unet.add_adapter(config)
    assert unet.conv_in.scaling['default'] == 2.0


def test_suffix_targets_select_the_reference_modules_on_sd21():
    """UNET_LORA_TARGETS (peft suffixes) pick exactly the SD2.1 modules the RASS code's substring
    rule picks (without conv_out); the VAE rule is OSEDiff's."""
    import sys
    sys.path.insert(0, str(__import__('pathlib').Path(__file__).parent / 'test_converters'))
    from reference_layouts import reference_unet_groups, reference_vae_modules
    with torch.device('meta'):
        unet = diffusion.build_unet(config=diffusion.SD21_UNET_CONFIG)
        vae = diffusion.build_vae(config=diffusion.SD21_VAE_CONFIG)
    reference = set().union(*reference_unet_groups(unet, with_conv_out=False).values())
    unet.add_adapter(lora.make_lora_config())
    ours = {n for n, m in unet.named_modules() if hasattr(m, 'lora_A')}
    assert ours == reference and 'conv_in' in ours and 'conv_out' not in ours
    assert lora.vae_encoder_lora_targets(vae) == sorted(set(reference_vae_modules(vae)))


def test_lora_saved_with_reference_alpha_reproduces_merged_weights(tmp_path):
    """A LoRA trained with the reference's config (no lora_alpha: scale 2) loads with scale 2:
    the merged weight is W + 2·B·A, and the adapter output matches the reference's."""
    from peft import LoraConfig
    torch.manual_seed(3)
    base = diffusion.build_unet(config=diffusion.TINY_UNET_CONFIG)
    reference = copy.deepcopy(base)
    reference.add_adapter(LoraConfig(r=4, init_lora_weights='gaussian',
                                     target_modules=lora.UNET_LORA_TARGETS))
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if 'lora_B' in name:
                param.normal_(0, 0.05)
    path = tmp_path / 'reference_alpha.safetensors'
    lora.save_scr_lora(path, reference, reference.peft_config['default'])
    q = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q'
    a = reference.get_submodule(q).lora_A['default'].weight
    b = reference.get_submodule(q).lora_B['default'].weight
    expected = base.get_submodule(q).weight + 2.0 * b @ a  # hand-computed merge, scale 8 / 4
    merged = lora.merge_scr_lora(copy.deepcopy(base), path)
    torch.testing.assert_close(merged.get_submodule(q).weight, expected)
    torch.testing.assert_close(_run(merged), _run(reference), atol=1e-5, rtol=1e-5)


def _file_without(path, tmp_path, drop=None, add=None, reshape=None):
    """A copy of an SCR LoRA file with one tensor dropped, added or reshaped."""
    from safetensors import safe_open
    with safe_open(str(path), framework='pt') as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    if drop:
        del tensors[drop]
    if add:
        tensors[add] = torch.zeros(4, 4)
    if reshape:
        tensors[reshape] = torch.zeros(3, 3)
    out = tmp_path / 'edited.safetensors'
    save_file(tensors, str(out), metadata=meta)
    return out


def test_missing_unexpected_or_misshapen_tensors_fail_with_one_error(trained_unet, tmp_path):
    base, unet, config = trained_unet
    path = tmp_path / 'scr_lora.safetensors'
    lora.save_scr_lora(path, unet, config)
    key = 'down_blocks.0.attentions.0.proj_in.lora_A.weight'
    for edit, pattern in ((dict(drop=key), rf'1 missing tensors \(first: {key}\) and 0 unexpected'),
                          (dict(add='mid_block.extra.lora_A.weight'),
                           r'0 missing tensors and 1 unexpected tensors \(first: mid_block.extra'),
                          (dict(reshape=key), rf'1 tensors have another shape \(first: {key}')):
        bad = _file_without(path, tmp_path, **edit)
        with pytest.raises(ValueError, match=pattern):
            if 'add' in edit:  # the SCR path (adapter)
                lora.load_scr_lora_into(copy.deepcopy(base), lora.load_scr_lora(bad))
            else:  # the RASS path (merge)
                lora.merge_scr_lora(copy.deepcopy(base), bad)
    with pytest.raises(ValueError, match=r"lacks \['conv_in.bias'\]"):
        lora.merge_scr_lora(copy.deepcopy(base), _file_without(path, tmp_path, drop='conv_in.bias'))
