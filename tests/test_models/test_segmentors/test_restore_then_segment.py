"""RestoreThenSegment (R2S): SCR restorer from its LoRA file, then any mmseg segmentor."""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_rass.lora import make_lora_config, save_scr_lora
from mmseg_rass.models.diffusion import TINY_UNET_CONFIG, build_unet

init_default_scope('mmseg')
CONFIG = 'configs/rass/restore_then_segment_demo.py'


@pytest.fixture(scope='module')
def scr_file(tmp_path_factory):
    torch.manual_seed(2)
    unet = build_unet(config=TINY_UNET_CONFIG)
    cfg = make_lora_config(rank=4)
    unet.add_adapter(cfg)
    path = tmp_path_factory.mktemp('r2s') / 'scr_lora.safetensors'
    save_scr_lora(str(path), unet, cfg)
    return str(path)


@pytest.fixture(scope='module')
def r2s_cfg(repo_root, scr_file):
    cfg = Config.fromfile(osp.join(repo_root, CONFIG))
    cfg.model.restorer.scr_lora = scr_file
    return cfg


def test_predicts_at_original_size_and_loads_plain_segmentor_weights(r2s_cfg, tmp_path):
    model = MODELS.build(r2s_cfg.model).eval()
    seg_state = {k: torch.randn_like(v) if v.is_floating_point() else v
                 for k, v in model.segmentor.state_dict().items()}
    model.load_state_dict(seg_state, strict=True)  # plain segmentor keys -> segmentor.*
    for key in ('backbone.stem.0.weight', 'decode_head.conv_seg.weight'):
        assert torch.equal(model.segmentor.state_dict()[key], seg_state[key])
    data = dict(inputs=[torch.randint(0, 256, (3, 60, 100), dtype=torch.uint8)], data_samples=None)
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_shape=(60, 100), ori_shape=(30, 50)))
    data['data_samples'] = [sample]
    out = model.test_step(data)
    assert out[0].pred_sem_seg.data.shape == (1, 30, 50)
    with pytest.raises(ValueError, match='evaluation-only'):
        model(torch.zeros(1, 3, 64, 64), mode='loss')


def test_restored_image_reaches_the_segmentor_unchanged(r2s_cfg, monkeypatch):
    """With an identity restorer, R2S equals the segmentor on the LQ image itself."""
    model = MODELS.build(r2s_cfg.model).eval()
    monkeypatch.setattr(model.restorer, 'restore', lambda lq, text: lq)
    from mmseg.structures import SegDataSample
    img = torch.randint(0, 256, (3, 64, 128), dtype=torch.uint8)
    make = lambda: [SegDataSample(metainfo=dict(img_shape=(64, 128), ori_shape=(64, 128)))]  # noqa
    with torch.no_grad():
        a = model.test_step(dict(inputs=[img], data_samples=make()))[0].seg_logits.data
        b = model.segmentor.test_step(dict(inputs=[img], data_samples=make()))[0].seg_logits.data
    assert torch.allclose(a, b, atol=1e-4)


def test_runner_keeps_the_restorers_preprocessor(r2s_cfg, tmp_path):
    """mmengine's Runner puts a config's top-level ``data_preprocessor`` (here the FPN base's
    ImageNet mean/std) into a model config without one: the R2S config must keep its own."""
    from mmengine.runner import Runner
    cfg = r2s_cfg.copy()
    cfg.work_dir = str(tmp_path)
    assert cfg.data_preprocessor.mean[0] == 123.675  # what the Runner would inject
    model = Runner.from_cfg(cfg).model
    assert model.data_preprocessor.mean.flatten().tolist() == [127.5] * 3
    assert model.data_preprocessor.std.flatten().tolist() == [127.5] * 3


def test_end_to_end_with_tools_test(r2s_cfg, demo_data_root, scr_file, tool_runner, tmp_path):
    seg = MODELS.build(r2s_cfg.model.segmentor)
    ckpt = tmp_path / 'segmentor.pth'
    torch.save(dict(state_dict=seg.state_dict(), meta=dict()), ckpt)
    result = tool_runner([
        'tools/test.py', CONFIG, str(ckpt), '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', f'model.restorer.scr_lora={scr_file}',
        f'test_dataloader.dataset.data_root={demo_data_root}',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False'
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'Iter\(test\) \[2/2\].*mIoU: \d', result.stdout + result.stderr)
