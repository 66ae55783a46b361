"""The diffusion models in bf16 on each device (``device`` fixture: the CPU, and CUDA when a GPU
is visible): no device or dtype mismatch in training or inference, results close to float32."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmseg.registry import MODELS

from mmseg_rass.models.backbones import RASSBackbone

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _rass(dtype, device):
    """A tiny RASS backbone, the same weights whatever the dtype (the projections are drawn from
    the global generator); posterior mean, so that outputs do not depend on the device's
    generator."""
    torch.manual_seed(0)
    return RASSBackbone(arch='tiny', out_channels=16, class_names=['road', 'car', 'sky'],
                        prompt='class_names', sample_posterior=False, dtype=dtype).to(device)


def _finite_grads(model):
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    return grads


def test_rass_bf16_features_match_float32_and_backpropagate(device):
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        want = _rass('float32', 'cpu').eval()(x)
        model = _rass('bfloat16', device).eval()
        got = model(x.to(device))
    assert [tuple(g.shape) for g in got] == [tuple(w.shape) for w in want]
    for g, w in zip(got, want):
        assert g.device.type == device and g.dtype == torch.float32
        # bf16 keeps ~3 significant digits: after the tiny UNet the deepest maps differ by
        # up to ~6 % from float32 on the CPU; a wrong dtype or device path differs by ~100 %
        assert ((g.cpu() - w).norm() / w.norm()).item() < 0.1
    model.train()
    sum(f.square().mean() for f in model(x.to(device))).backward()
    grads = _finite_grads(model)
    assert any(g.abs().sum() > 0 for n, g in grads.items() if '.lora_' in n)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_scr_train_step_under_bf16_autocast(device, tool_loader):
    model = MODELS.build(dict(type='SCRRestorer', arch='tiny', lpips_weight=0,
                              class_names=['road', 'traffic light', 'car'])).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    data = tool_loader('benchmark_scr').random_batch(2, 32)
    with torch.autocast(device, dtype=torch.bfloat16):
        log = model.train_step(data, OptimWrapper(torch.optim.AdamW(params, lr=1e-3)))
    assert {'loss_mse', 'loss_scl_token', 'loss_scl_pixel'} <= set(log)
    assert all(torch.isfinite(v).all() for v in log.values())
    assert all(p.device.type == device and p.dtype == torch.float32 for p in params)
    assert sum(not torch.equal(p.detach(), b) for p, b in zip(params, before)) > len(params) // 2


def test_segsr_trains_and_samples_under_bf16(device, tool_loader):
    bench = tool_loader('benchmark_segsr')
    model = bench.build(bench.TINY, device).train()
    prepared = model.data_preprocessor(bench.batch(2, 64, 64, model.num_classes), True)
    with torch.autocast(device, dtype=torch.bfloat16):
        losses = model.loss(**prepared)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    _finite_grads(model)
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.autocast(device, dtype=torch.bfloat16):
        out = model.eval().sample(image.to(device), num_steps=2)
    assert out['restored'].shape == (1, 3, 64, 96)
    assert out['seg_logits'].shape == (1, model.num_classes, 64, 96)
    for value in out.values():
        assert value.device.type == device and torch.isfinite(value).all()
