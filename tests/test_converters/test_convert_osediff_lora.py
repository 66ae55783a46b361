"""tools/convert_osediff_lora.py: OSEDiff / SCR pickle (the reference layout) → SCR LoRA file."""
import copy
import os.path as osp
import runpy
import sys

import pytest
import torch
from peft import LoraConfig

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from reference_layouts import (add_reference_adapters, osediff_pickle,  # noqa: E402
                               reference_unet_groups, reference_vae_modules)

from mmseg_rass import lora  # noqa: E402
from mmseg_rass.models import diffusion  # noqa: E402


def _reference_models(arch, device):
    """UNet + VAE of ``arch`` carrying OSEDiff's adapters (UNet: 3 groups with conv_out)."""
    configs = diffusion.ARCHS[arch]
    with torch.device(device):
        unet = diffusion.build_unet(config=configs['unet'])
        vae = diffusion.build_vae(config=configs['vae'])
    base = (copy.deepcopy(unet), copy.deepcopy(vae)) if device != 'meta' else None
    add_reference_adapters(unet, reference_unet_groups(unet, with_conv_out=True), '')
    vae_modules = reference_vae_modules(vae)
    vae.add_adapter(LoraConfig(r=4, init_lora_weights='gaussian', target_modules=vae_modules),
                    adapter_name='default_encoder')
    return unet, vae, vae_modules, base


@pytest.fixture(scope='module')
def tool(repo_root):
    return runpy.run_path(osp.join(repo_root, 'tools', 'convert_osediff_lora.py'))


def test_sd21_pickle_converts_every_tensor(tool, tmp_path):
    unet, vae, vae_modules, _ = _reference_models('sd21', 'meta')
    ckpt = osediff_pickle(unet, vae, vae_modules)
    gen = torch.Generator().manual_seed(0)
    for part in ('state_dict_unet', 'state_dict_vae'):  # small real tensors at SD2.1 shapes
        ckpt[part] = {k: torch.randn(v.shape, generator=gen) for k, v in ckpt[part].items()}
    src, out = tmp_path / 'osediff.pkl', tmp_path / 'scr_lora.safetensors'
    torch.save(ckpt, src)
    report = tool['main']([str(src), str(out)])  # checks keys + shapes against SD2.1 (meta)

    scr = lora.load_scr_lora(out)
    assert scr.lora_config.r == 4 and scr.lora_config.lora_alpha == 8
    assert scr.vae_lora_config.r == 4 and scr.vae_lora_config.lora_alpha == 8
    # every source tensor lands in the file with its value; nothing else is in the file
    unet_src = ckpt['state_dict_unet']
    expected = {}
    for key, value in unet_src.items():
        if key.startswith('conv_in.base_layer.'):
            expected['conv_in.' + key.rsplit('.', 1)[1]] = value
        else:
            for group in ('encoder', 'decoder', 'others'):
                key = key.replace(f'.default_{group}.', '.')
            expected[key] = value
    got = dict(scr.lora_state, **{f'conv_in.{k}': v for k, v in scr.conv_in_state.items()})
    assert set(got) == set(expected) and len(got) == len(unet_src)
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    vae_expected = {k.replace('.default_encoder.', '.'): v for k, v in ckpt['state_dict_vae'].items()}
    assert set(scr.vae_lora_state) == set(vae_expected)
    assert all(torch.equal(scr.vae_lora_state[k], v) for k, v in vae_expected.items())
    assert 'conv_out' in scr.lora_config.target_modules  # OSEDiff adapts conv_out
    assert report['unet_lora_tensors'] + report['conv_in_tensors'] == len(unet_src)


def test_tiny_pickle_restores_like_the_reference_model(tmp_path):
    """Numbers, not only names: the converted file reproduces the reference adapters (scale 2)."""
    from mmseg_rass.converters import convert_osediff_lora
    torch.manual_seed(0)
    unet, vae, vae_modules, (base_unet, base_vae) = _reference_models('tiny', 'cpu')
    with torch.no_grad():
        for model in (unet, vae):
            for name, param in model.named_parameters():
                if 'lora_B' in name:
                    param.normal_(0, 0.05)
        unet.conv_in.base_layer.weight.add_(0.1)
    scr, _ = convert_osediff_lora(osediff_pickle(unet, vae, vae_modules))
    path = tmp_path / 'scr.safetensors'
    lora.write_scr_lora(path, scr)
    ours_unet = lora.load_scr_lora_into(base_unet, lora.load_scr_lora(path), vae=base_vae)
    latent, text = torch.randn(1, 4, 8, 8), torch.randn(1, 7, 32)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours_unet(latent, 999, encoder_hidden_states=text).sample,
                                   unet(latent, 999, encoder_hidden_states=text).sample)
        torch.testing.assert_close(base_vae.encode(image).latent_dist.mean,
                                   vae.encode(image).latent_dist.mean)


def test_bad_pickles_fail_clearly(tool, tmp_path):
    from mmseg_rass.converters import convert_osediff_lora
    unet, vae, vae_modules, _ = _reference_models('tiny', 'meta')
    ckpt = osediff_pickle(unet, vae, vae_modules)
    broken = dict(ckpt, state_dict_unet=dict(ckpt['state_dict_unet']))
    key = next(k for k in broken['state_dict_unet'] if 'lora_B' in k)
    del broken['state_dict_unet'][key]
    with pytest.raises(ValueError, match=r'1 missing tensors \(first: .*lora_B.weight\)'):
        convert_osediff_lora(broken)
    with pytest.raises(ValueError, match=r"unknown top-level entries \['optimizer'\]"):
        convert_osediff_lora(dict(ckpt, optimizer={}))
    with pytest.raises(ValueError, match='not an OSEDiff/SCR pickle'):
        convert_osediff_lora({'model': {}})
    evil = tmp_path / 'object.pkl'
    torch.save({'rank_unet': 4, 'obj': tmp_path}, evil)  # a pickled Python object
    with pytest.raises(ValueError, match='weights_only=True.*--trust-checkpoint'):
        tool['main']([str(evil), str(tmp_path / 'x.safetensors')])
    truncated = tmp_path / 'truncated.pkl'
    truncated.write_bytes(evil.read_bytes()[:200])  # damaged, not untrusted: no opt-in offered
    with pytest.raises(ValueError, match=r'cannot read checkpoint .*truncated\.pkl') as info:
        tool['main']([str(truncated), str(tmp_path / 'x.safetensors')])
    assert '--trust-checkpoint' not in str(info.value)
