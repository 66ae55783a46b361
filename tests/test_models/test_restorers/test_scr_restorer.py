"""SCRRestorer: attention capture, L_SCL, prompts, trainable set, checkpoints, LoRA round trip,
reference defaults, LPIPS, posterior sampling, VSD."""
import os.path as osp

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_rass import lora
from mmseg_rass.models import diffusion
from mmseg_rass.models.losses import SCLLoss
from mmseg_rass.models.prompts import build_class_prompt
from mmseg_rass.models.trainable_state import trainable_names

CLASSES = ['road', 'traffic light', 'car']


def _build(**kwargs):
    """A tiny restorer; its random weights come from ``init_seed=0``, not the global RNG."""
    cfg = dict(type='SCRRestorer', arch='tiny', class_names=CLASSES, lpips_weight=0)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _base_unet():
    """The UNet weights ``_build()`` starts from (same seed, same construction order)."""
    torch.manual_seed(0)
    diffusion.build_vae(config=diffusion.TINY_VAE_CONFIG)
    diffusion.build_text_encoder(config=diffusion.TINY_TEXT_ENCODER_CONFIG)
    return diffusion.build_unet(config=diffusion.TINY_UNET_CONFIG)


def _batch(n=2, height=32, width=64):
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(height, width)))
        sample.gt_hq_img = PixelData(
            data=torch.randint(0, 256, (3, height, width), generator=gen, dtype=torch.uint8))
        labels = torch.zeros(1, height, width, dtype=torch.long)
        labels[:, height // 2:] = 1
        labels[:, :2] = 255
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, height, width), generator=gen, dtype=torch.uint8)
              for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


@pytest.fixture(scope='module')
def restorer():
    model = _build()
    with torch.no_grad():  # a "trained" adapter: B != 0
        for name, param in model.unet.named_parameters():
            if 'lora_B' in name:
                param.normal_(0, 0.02)
    return model.eval()


def test_trainable_set_and_structure(restorer):
    names = trainable_names(restorer)
    assert names and all('lora_' in n or n.startswith('unet.conv_in.base_layer') for n in names)
    assert 'unet.conv_in.base_layer.weight' in names
    # OSEDiff's VAE-encoder LoRA (encoder convs, attention projections, quant_conv) trains too
    vae_trainable = {n for n, p in restorer.vae.named_parameters() if p.requires_grad}
    assert vae_trainable and all('.lora_' in n for n in vae_trainable)
    assert any(n.startswith('quant_conv.lora_A') for n in vae_trainable)
    assert not any(n.startswith(('decoder.', 'post_quant_conv.')) for n in vae_trainable)
    assert not any(p.requires_grad for p in restorer.text_encoder.parameters())
    assert restorer.lora_config.r == 4 and restorer.lora_config.init_lora_weights == 'gaussian'


def test_captured_attention_is_a_distribution_over_tokens(restorer):
    data = restorer.data_preprocessor(_batch(n=2, height=64, width=64))
    text, _ = restorer.encode_prompts(data['data_samples'], training=True)
    with torch.no_grad():
        recorded = restorer.restore(data['inputs'], text, record=True)
        maps = restorer.attention_maps()
        fused = restorer.restore(data['inputs'], text, record=False)
    # tiny UNet: 3 down + 1 mid + 3x2 up cross-attention layers at 8², 4², 2², 1² (latent 8²)
    assert len(maps) == 10
    assert sorted({m.shape[2:4] for m in maps}) == [(1, 1), (2, 2), (4, 4), (8, 8)]
    for m in maps:
        assert m.shape[0] == 2 and m.shape[-1] == 77 and m.shape[2] == m.shape[3]
        torch.testing.assert_close(m.sum(-1), torch.ones_like(m[..., 0]))
    # the explicit-softmax processor computes what the fused SDPA processor computes
    torch.testing.assert_close(recorded, fused, atol=1e-5, rtol=1e-4)
    restorer.attn_store.release()


def test_class_token_indices_multi_token_names():
    _, tokenizer = diffusion.build_text_encoder(config=diffusion.TINY_TEXT_ENCODER_CONFIG)
    ids, where = build_class_prompt(tokenizer, CLASSES, [1, 2])
    assert ids.shape == (77, )
    # byte-level tokenizer without merges: "traffic light" is 12 tokens, "car" 3
    assert where == {1: list(range(1, 13)), 2: [14, 15, 16]}
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    assert ''.join(tokens[i] for i in where[1]) == 'traffic</w>light</w>'
    assert tokens[13] == ',</w>' and tokens[17] == '<|endoftext|>'
    assert ids.tolist() == tokenizer('traffic light, car', padding='max_length', max_length=77)['input_ids']
    # names that do not fit in 77 tokens are left out, the prompt stays 77 long
    ids, where = build_class_prompt(tokenizer, ['x' * 30] * 4, [0, 1, 2, 3])
    assert ids.shape == (77, ) and list(where) == [0, 1]


def test_scl_loss_prefers_attention_on_the_mask():
    loss = SCLLoss(token_weight=1.0, pixel_weight=1.0, mask_stride=1)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[:, :, :2] = 1  # class 1 on the left half
    tokens = [{1: [1, 2]}]

    def maps(left, right):
        probs = torch.full((1, 2, 4, 4, 5), 0.1)
        probs[..., :2, 1:3] = left
        probs[..., 2:, 1:3] = right
        return [probs]

    matching = loss(maps(0.3, 0.0), tokens, labels)
    wrong = loss(maps(0.0, 0.3), tokens, labels)
    uniform = loss(maps(0.2, 0.2), tokens, labels)
    assert matching['loss_scl_token'].item() == pytest.approx(0.0, abs=1e-6)
    assert wrong['loss_scl_token'].item() == pytest.approx(1.0, abs=1e-6)
    assert uniform['loss_scl_token'].item() == pytest.approx(0.25, abs=1e-6)  # (1 - 1/2)²
    assert matching['loss_scl_pixel'] < uniform['loss_scl_pixel'] < wrong['loss_scl_pixel']
    # ignored pixels count for neither term: with the right half void, uniform attention
    # falls entirely on class 1
    labels[:, :, 2:] = 255
    assert loss(maps(0.2, 0.2), tokens, labels)['loss_scl_token'].item() == pytest.approx(0.0)


def test_scl_gradient_reaches_only_lora_and_conv_in():
    model = _build(pixel_weight=0.0, gradient_checkpointing=True)
    model.train()
    losses = model.loss(**model.data_preprocessor(_batch(n=1), True))
    (losses['loss_scl_token'] + losses['loss_scl_pixel']).backward()
    assert not model.attn_store.maps  # the checkpoint recomputation keeps no maps
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad and with_grad <= set(trainable_names(model))
    assert 'unet.conv_in.base_layer.weight' in with_grad
    # B starts at zero (gaussian init), so the first gradient shows up on B of the attn2 layers
    assert any(model.get_parameter(n).grad.abs().sum() > 0 for n in with_grad
               if 'attn2.to_k.lora_B' in n)


def test_checkpoint_holds_only_trainable_and_reloads(restorer, tmp_path):
    state = restorer.state_dict()
    assert set(state) == set(trainable_names(restorer))
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': state}, path)
    fresh = _build().eval()
    from mmengine.runner import load_checkpoint
    load_checkpoint(fresh, str(path), strict=True)  # frozen weights are not "missing"
    result = fresh.load_state_dict(state, strict=True)
    assert not result.missing_keys
    data = restorer.data_preprocessor(_batch(n=1))
    with torch.no_grad():
        assert torch.equal(fresh(**data), restorer(**data))


def test_export_import_round_trip_is_exact(restorer, tmp_path):
    path = tmp_path / 'scr_lora.safetensors'
    restorer.save_lora(path)
    reloaded = _build(scr_lora=str(path)).eval()
    data = restorer.data_preprocessor(_batch(n=1))
    with torch.no_grad():
        reference = restorer(**data)
        assert torch.equal(reloaded(**data), reference)
        # merged into a plain UNet (what the RASS backbone does) it restores the same
        merged = lora.merge_scr_lora(_base_unet(), path)
        assert not any('lora_' in n for n, _ in merged.named_parameters())
        adapted, restorer.unet = restorer.unet, merged
        try:
            restored = restorer(**data)
        finally:
            restorer.unet = adapted
        torch.testing.assert_close(restored, reference, atol=1e-4, rtol=1e-4)


def test_predict_outputs_and_errors(restorer):
    restorer.save_attention = True
    try:
        outputs = restorer.val_step(_batch(n=1, height=36, width=60))  # padded to 40x64
    finally:
        restorer.save_attention = False
    out = outputs[0]
    assert out.pred_img.shape == out.lq_img.shape == out.gt_hq_img.shape == (36, 60)
    assert out.pred_img.data.dtype == torch.uint8 and out.gt_sem_seg.shape == (36, 60)
    # test prompt 'class_names': every dataset class is named, whatever the GT holds
    assert out.attn_classes == [0, 1, 2] and out.attn_maps.data.shape == (3, 5, 8)
    with pytest.raises(ValueError, match='pretrained_model_path'):
        MODELS.build(dict(type='SCRRestorer'))
    with pytest.raises(FileNotFoundError, match='unet'):
        MODELS.build(dict(type='SCRRestorer', pretrained_model_path='/nonexistent/sd21',
                          lpips_weight=0))


def test_class_names_from_dataset_type_and_configs(restorer, repo_root):
    from mmengine.config import Config
    old = restorer.class_names
    try:
        restorer.set_class_names('CityscapesDataset')
        assert len(restorer.class_names) == 19 and restorer.class_names[6] == 'traffic light'
        with pytest.raises(ValueError, match='registered dataset type'):
            restorer.set_class_names('NoSuchDataset')
    finally:
        restorer.class_names = old
    for name in ('scr_tiny_demo.py', 'scr_sd21_cityscapes_lq.py'):
        cfg = Config.fromfile(f'{repo_root}/configs/scr/{name}')
        assert cfg.model.type == 'SCRRestorer' and cfg.test_evaluator.type == 'RestorationMetric'
        assert [t['type'] for t in cfg.train_pipeline][-2:] == ['Degrade', 'PackRestorationInputs']


def test_defaults_follow_osediff():
    import inspect

    from mmseg_rass.models.restorers import SCRRestorer
    defaults = {k: v.default for k, v in inspect.signature(SCRRestorer).parameters.items()}
    assert defaults['timestep'] == 999  # OSEDiff restores at t=999 (RASS: t=1 for features only)
    assert (defaults['pixel_loss'], defaults['pixel_weight']) == ('mse', 1.0)
    assert (defaults['lpips_weight'], defaults['lpips_net']) == (2.0, 'vgg')
    assert (defaults['lora_rank'], defaults['lora_alpha'], defaults['vae_lora_rank']) == (4, 8, 4)
    assert defaults['sample_posterior'] is True and defaults['vsd'] is None
    assert (defaults['prompt'], defaults['test_prompt']) == ('gt', 'class_names')
    model = _build()
    q = 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k'
    assert model.unet.get_submodule(q).scaling['default'] == 2.0
    assert model.vae.quant_conv.scaling['default'] == 2.0


def test_lpips_needs_weights_and_reads_torchvision_files(tmp_path):
    import torchvision
    with pytest.raises(ValueError, match=r'lpips_weight=2.0 asks for the LPIPS loss.*docs/scr.md'):
        MODELS.build(dict(type='SCRRestorer', arch='tiny', class_names=CLASSES))
    with pytest.raises(FileNotFoundError, match='alexnet-owt-7be5be79.pth'):
        _build(lpips_weight=2.0, lpips_net='alex', lpips_path=str(tmp_path / 'missing.pth'))
    features = torchvision.models.alexnet().features.state_dict()
    path = tmp_path / 'alexnet-owt-7be5be79.pth'  # torchvision's layout (features.*)
    torch.save({f'features.{k}': v for k, v in features.items()}, path)
    model = _build(lpips_weight=2.0, lpips_net='alex', lpips_path=str(path), scl_loss=None)
    import lpips
    package = torch.load(osp.join(osp.dirname(lpips.__file__), 'weights/v0.1/alex.pth'),
                         map_location='cpu', weights_only=True)
    assert torch.equal(model.lpips.lin0.model[1].weight, package['lin0.model.1.weight'])
    assert torch.equal(model.lpips.net.slice1[0].weight, features['0.weight'])
    model.train()
    losses = model.loss(**model.data_preprocessor(_batch(n=1), True))
    assert losses['loss_lpips'] > 0 and set(losses) == {'loss_mse', 'loss_lpips'}
    torch.save({'features.0.weight': torch.zeros(1)}, path)
    with pytest.raises(ValueError, match='missing tensors'):
        _build(lpips_weight=2.0, lpips_net='alex', lpips_path=str(path))


def test_posterior_is_sampled_and_repeatable_at_evaluation(restorer):
    lq = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        restorer.train()
        train = [restorer.encode_latent(lq) for _ in range(2)]
        restorer.eval()
        evaluation = [restorer.encode_latent(lq) for _ in range(2)]
        restorer.sample_posterior = False
        mean = restorer.encode_latent(lq)
        restorer.sample_posterior = True
    assert not torch.equal(*train) and torch.equal(*evaluation)
    assert not torch.equal(evaluation[0], mean)
    torch.testing.assert_close(
        mean, restorer.vae.encode(lq).latent_dist.mean * restorer.vae.config.scaling_factor)


def test_vsd_follows_osediff_and_reaches_only_its_parameters():
    model = _build(vsd=dict(cfg_scale=1.0), scl_loss=None)
    model.train()
    data = model.data_preprocessor(_batch(n=1), True)
    text, _ = model.encode_prompts(data['data_samples'], training=True)
    _, latent0 = model.generate(data['inputs'], text)
    # the frozen SD UNet is the generator's base UNet (VSD adapter off)
    latent, t = torch.randn(1, 4, 4, 8), torch.tensor([500])
    model.vsd_unet.disable_adapters()
    with torch.no_grad():
        torch.testing.assert_close(model.vsd_unet(latent, t, encoder_hidden_states=text).sample,
                                   _base_unet()(latent, t, encoder_hidden_states=text).sample)
    model.vsd_unet.enable_adapters()
    # untrained VSD LoRA (B = 0) and guidance 1: both x0 estimates agree, no VSD gradient
    torch.manual_seed(0)
    assert model.vsd_loss(latent0, text).item() < 1e-10
    model.vsd['cfg_scale'] = 7.5
    torch.manual_seed(0)
    loss = model.vsd_loss(latent0, text)
    assert loss.item() > 0
    loss.backward(retain_graph=True)
    generator = {n for n, p in model.named_parameters() if p.grad is not None}
    assert generator and not any(n.startswith('vsd_unet.') for n in generator)
    assert all('lora_' in n or 'conv_in' in n for n in generator)
    model.zero_grad()
    model.vsd_lora_loss(latent0, text).backward()
    vsd = {n for n, p in model.named_parameters() if p.grad is not None}
    assert vsd and all(n.startswith('vsd_unet.') and '.lora_' in n for n in vsd)
    assert any('conv_out.lora_' in n for n in vsd)  # OSEDiff's regulariser adapts conv_out too
    losses = model.loss(**data)
    assert {'loss_vsd', 'loss_vsd_lora'} <= set(losses)
