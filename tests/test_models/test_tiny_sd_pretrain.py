"""The project's pretrained tiny Stable Diffusion: an SD2.1-base-like folder, learned, keyed."""
import json
import shutil

import pytest
import torch
from mmseg.registry import MODELS

from mmseg_rass.models import tiny_sd_pretrain as tsd
from mmseg_rass.models.backbones import RASSBackbone
from mmseg_rass.models.diffusion import build_tiny_tokenizer

# Tiny widths, images and steps: seconds on one CPU thread.
SETTINGS = dict(arch='tiny', seed=0,
                vae=dict(steps=60, batch_size=4, crop=32, lr=5e-3, warmup=5),
                unet=dict(steps=20, batch_size=8, latent_crop=8, warmup=5))


@pytest.fixture(scope='module')
def data(demo_data_root, tmp_path_factory):
    """A private copy of the demo data (4 train / 2 val, 64x128): tests change files."""
    root = tmp_path_factory.mktemp('tiny_sd_data') / 'demo'
    shutil.copytree(demo_data_root, root)
    return root


@pytest.fixture(scope='module')
def built(data, tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp('tiny_sd') / 'sd'
    lines = []
    manifest, reason = tsd.ensure_tiny_sd(str(data), str(out), log=lines.append, **SETTINGS)
    assert reason == 'absent'
    return out, manifest, lines


def _key(data, **changes):
    settings = dict(SETTINGS, **changes)
    return tsd.pretrain_key(str(data), tsd.pretrain_settings(**settings))


def test_folder_has_the_sd21_layout_schedule_and_tokenizer(built):
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    out, manifest, _ = built
    assert {'model_index.json', 'vae', 'unet', 'text_encoder', 'tokenizer', 'scheduler',
            tsd.MANIFEST_NAME} <= {p.name for p in out.iterdir()}
    pipe = StableDiffusionPipeline.from_pretrained(str(out), local_files_only=True)
    assert pipe.vae.config.scaling_factor == manifest['metrics']['scaling_factor']
    assert pipe.vae.config.latent_channels == 4 and len(pipe.vae.config.block_out_channels) == 4
    sched = pipe.scheduler
    assert isinstance(sched, DDPMScheduler) and sched.config.prediction_type == 'epsilon'
    assert (sched.config.num_train_timesteps, sched.config.beta_schedule,
            sched.config.beta_start, sched.config.beta_end) == (1000, 'scaled_linear', 0.00085,
                                                                0.012)
    reference = build_tiny_tokenizer()
    for text in ('road,car', ''):
        assert pipe.tokenizer(text, padding='max_length').input_ids == \
            reference(text, padding='max_length').input_ids


def test_rass_scr_and_srdm_load_it_as_they_load_sd21(built, one_torch_thread):
    from safetensors.torch import load_file
    out, manifest, _ = built
    scale = manifest['metrics']['scaling_factor']
    vae_weights = load_file(str(out / 'vae' / 'diffusion_pytorch_model.safetensors'))
    unet_weights = load_file(str(out / 'unet' / 'diffusion_pytorch_model.safetensors'))

    backbone = RASSBackbone(pretrained_model_path=str(out), prompt='class_names',
                            class_names='CityscapesDataset', out_channels=8).eval()
    assert backbone.latent_scale == scale
    torch.testing.assert_close(backbone.vae_encoder.conv_in.weight,
                               vae_weights['encoder.conv_in.weight'])
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]

    scr = MODELS.build(dict(type='SCRRestorer', pretrained_model_path=str(out), lpips_weight=0,
                            class_names='CityscapesDataset'))
    assert scr.vae.config.scaling_factor == scale
    base = scr.unet.conv_out
    torch.testing.assert_close(getattr(base, 'base_layer', base).weight,
                               unet_weights['conv_out.weight'])

    srdm = MODELS.build(dict(type='SRDM', pretrained_model_path=str(out)))
    assert srdm.latent_scale == scale
    assert srdm.scheduler.config.beta_schedule == 'scaled_linear'


def test_scaling_factor_is_one_over_the_latent_std(built, data):
    from diffusers import AutoencoderKL
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(3, 4, 5, 6, generator=gen) * 7 + 2
    exact = tsd.latent_scaling_factor(mean, torch.full_like(mean, -200.0), gen)
    assert exact == pytest.approx(1 / mean.flatten().std().item(), rel=1e-6)

    out, manifest, _ = built
    vae = AutoencoderKL.from_pretrained(str(out / 'vae')).eval()
    images, _ = tsd.load_split(tsd.data_files(str(data))['train'])
    mean, logvar = tsd.latent_moments(vae, images)
    sample = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=gen)
    assert vae.config.scaling_factor == pytest.approx(1 / sample.std().item(), rel=0.05)


def test_pretraining_learns_both_stages(built):
    _, manifest, lines = built
    m = manifest['metrics']
    assert m['vae_psnr_val'] > m['vae_psnr_val_init'] + 1
    assert m['vae_mse_curve'][-1]['loss'] < m['vae_mse_curve'][0]['loss']
    init, final = (sum(m[k].values()) / len(m[k]) for k in ('val_denoising_loss_init',
                                                           'val_denoising_loss'))
    assert final < init - 0.05
    assert any('vae: PSNR on the 2 clean val images' in line for line in lines)


def test_same_seed_same_bytes_other_seed_other_weights(built, data, tmp_path, one_torch_thread):
    out, manifest, _ = built
    again, reason = tsd.ensure_tiny_sd(str(data), str(tmp_path / 'again'), log=lambda _: None,
                                       **SETTINGS)
    assert reason == 'absent' and again['files'] == manifest['files']
    assert again['key'] == manifest['key']

    other = tmp_path / 'other'  # a stale folder of this tool is rebuilt in place
    shutil.copytree(out, other)
    changed, reason = tsd.ensure_tiny_sd(str(data), str(other), log=lambda _: None,
                                         **dict(SETTINGS, seed=1))
    assert reason == 'it was made with other inputs (changed: settings.seed)'
    weights = 'unet/diffusion_pytorch_model.safetensors'
    assert changed['files'][weights] != manifest['files'][weights]
    assert tsd.read_tiny_sd_manifest(str(other))['key'] == changed['key']


def test_unchanged_inputs_reuse_the_folder_with_one_line(built, data):
    out, manifest, _ = built
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob('*')}
    lines = []
    again, reason = tsd.ensure_tiny_sd(str(data), str(out), log=lines.append, **SETTINGS)
    assert reason is None and again == manifest
    assert lines == [f'[tiny_sd] {out} is up to date (key {manifest["key"][:12]}): reused']
    assert {p: p.stat().st_mtime_ns for p in out.rglob('*')} == stamps


def test_every_input_of_the_key_is_detected(built, data, tmp_path, monkeypatch):
    out, manifest, _ = built

    def status(root=data, **changes):
        return tsd.tiny_sd_status(str(out), *_key(root, **changes))

    assert status() is None
    assert status(seed=2).endswith('(changed: settings.seed)')
    assert status(unet=dict(SETTINGS['unet'], steps=21)).endswith('settings.unet.steps)')
    assert 'settings.configs.vae.block_out_channels' in status(arch='small')
    moved = tmp_path / 'data'
    shutil.copytree(data, moved)
    assert status(moved) is None  # keyed by content, not by path
    image = next(moved.glob('leftImg8bit/train/*/*.png'))
    image.write_bytes(image.read_bytes() + b'\0')  # one byte more in one training image
    assert status(moved).endswith('(changed: data_sha256)')
    monkeypatch.setattr(tsd, 'source_digest', lambda *args: 'other code')
    assert status().endswith('(changed: code_sha256)')


def test_foreign_damaged_or_edited_folders_are_never_reused(built, data, tmp_path, tool_loader,
                                                            capsys):
    out, manifest, _ = built
    key, parts = _key(data)
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'model_index.json').write_text('{}')  # e.g. a real SD folder: never overwritten
    with pytest.raises(tsd.TinySDError, match=f'{foreign} exists but has no tiny_sd_manifest'):
        tsd.tiny_sd_status(str(foreign), key, parts)
    with pytest.raises(SystemExit, match=f'pretrain_tiny_sd: {foreign} exists but has no'):
        tool_loader('pretrain_tiny_sd').main(['--data-root', str(data), '--out', str(foreign)])
    assert (foreign / 'model_index.json').read_text() == '{}'

    damaged = tmp_path / 'damaged'
    shutil.copytree(out, damaged)
    weights = damaged / 'vae' / 'diffusion_pytorch_model.safetensors'
    weights.write_bytes(weights.read_bytes()[:-4] + b'\0\0\0\0')
    assert tsd.tiny_sd_status(str(damaged), key, parts) == (
        'its files changed since it was written (vae/diffusion_pytorch_model.safetensors)')

    edited = tmp_path / 'edited'
    shutil.copytree(out, edited)
    record = json.loads((edited / tsd.MANIFEST_NAME).read_text())
    record['key'] = '0' * 64
    (edited / tsd.MANIFEST_NAME).write_text(json.dumps(record))
    assert tsd.tiny_sd_status(str(edited), key, parts).startswith('it was made with other')


def test_bad_settings_are_one_clear_error(data, tmp_path):
    with pytest.raises(tsd.TinySDError, match=r"unknown vae settings \['step'\]"):
        tsd.pretrain_settings('tiny', vae=dict(step=3))
    with pytest.raises(tsd.TinySDError, match="arch must be one of"):
        tsd.pretrain_settings('huge')
    with pytest.raises(tsd.TinySDError, match='make_demo_data.py --out'):
        tsd.data_files(str(tmp_path / 'none'))
    stale = tmp_path / 'stale'
    shutil.copytree(data, stale)
    (stale / 'demo_data_manifest.json').unlink()  # e.g. written by generator version 1
    with pytest.raises(tsd.TinySDError, match='not written by the current demo-data generator'):
        tsd.data_files(str(stale))


@pytest.mark.parametrize('config, part', [
    ('configs/scr/scr_tiny_sd_demo.py', 'model'),
    ('configs/rass/rass_tiny_sd_noscr_demo.py', 'model.backbone'),
    ('configs/segsr/segsr_tiny_sd_demo.py', 'model.srdm'),
])
def test_the_tiny_sd_demo_configs_start_from_the_folder(config, part, built, repo_root,
                                                        one_torch_thread):
    """The shipped demo configs name the pretrained folder (``data/tiny_sd``) and load its
    weights, never random ones."""
    import os.path as osp

    from mmengine.config import Config
    from safetensors.torch import load_file
    out, manifest, _ = built
    cfg = Config.fromfile(osp.join(repo_root, config))
    node = cfg
    for key in part.split('.'):
        node = node[key]
    assert node['pretrained_model_path'] == 'data/tiny_sd' and node.get('arch') is None
    node['pretrained_model_path'] = str(out)
    model = MODELS.build(node)
    weights = load_file(str(out / 'unet' / 'diffusion_pytorch_model.safetensors'))
    built_weights = {k.replace('.base_layer', ''): v for k, v in model.unet.state_dict().items()
                     if '.lora_' not in k}
    for name in ('up_blocks.1.resnets.0.conv1.weight', 'mid_block.attentions.0.proj_in.weight'):
        torch.testing.assert_close(built_weights[name], weights[name])
    if part == 'model.srdm':
        assert not any(p.requires_grad for p in model.vae.parameters())  # SD's VAE stays frozen
