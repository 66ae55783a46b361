"""Inference on real low-quality photos: mmseg's APIs and tools/infer.py, never degraded.

A RASS demo checkpoint is trained for two iterations (configs/rass/rass_tiny_demo.py on the
generated demo data); the photos are real, small, strongly JPEG-compressed ones
(tests/fixtures/real_lq/README.md).
"""
import copy
import glob
import importlib.util
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose

from mmseg_rass.tools_entry import run_cli

CONFIG = 'configs/rass/rass_tiny_demo.py'
PHOTOS = 'tests/fixtures/real_lq'


def _photos(repo_root):
    return sorted(glob.glob(osp.join(repo_root, PHOTOS, '*.jpg')))


def _inferencer_pipeline(cfg):
    """The pipeline mmseg's MMSegInferencer builds from a config (its own code, no model)."""
    from mmseg.apis import MMSegInferencer
    return MMSegInferencer._init_pipeline(object.__new__(MMSegInferencer), copy.deepcopy(cfg))


def _names(compose):
    return [type(t).__name__ for t in compose.transforms]


@pytest.fixture(scope='module')
def demo_checkpoint(repo_root, demo_data_root, tmp_path_factory):
    """Train the RASS demo config for two iterations; return (config path, checkpoint)."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(repo_root, CONFIG))
    work_dir = tmp_path_factory.mktemp('rass_demo')
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.data_root = str(demo_data_root)
    for step in cfg.train_dataloader.dataset.pipeline:  # small crops: a checkpoint, fast
        if step['type'] == 'RandomResize':
            step['scale'] = (128, 64)
        elif step['type'] == 'RandomCrop':
            step['crop_size'] = (64, 128)
    cfg.model.data_preprocessor.size = (64, 128)
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    torch.set_num_threads(1)
    Runner.from_cfg(cfg).train()
    return osp.join(repo_root, CONFIG), str(work_dir / 'iter_2.pth')


def test_mmseg_inferencer_on_real_photos(demo_checkpoint, repo_root, tmp_path):
    from mmseg.apis import MMSegInferencer
    config, checkpoint = demo_checkpoint
    inferencer = MMSegInferencer(model=config, weights=checkpoint, device='cpu')
    assert 'Degrade' not in _names(inferencer.pipeline)
    photos = _photos(repo_root)
    result = inferencer(photos, out_dir=str(tmp_path))
    assert len(glob.glob(str(tmp_path / 'vis' / '*'))) == len(photos) == 2
    preds = sorted(glob.glob(str(tmp_path / 'pred' / '*.png')))
    assert len(preds) == 2
    for photo, pred in zip(photos, result['predictions']):
        assert pred.shape == mmcv.imread(photo).shape[:2] and pred.max() < 19
    # the photo reaches the model as it is: loaded and resized, nothing synthesised
    packed = inferencer.pipeline(photos[0])['inputs'].permute(1, 2, 0).numpy()
    expected = mmcv.imrescale(mmcv.imread(photos[0]), (512, 256))
    assert np.array_equal(packed, expected)


def test_init_model_inference_model_show_result_pyplot(demo_checkpoint, repo_root, tmp_path):
    from mmseg.apis import inference_model, init_model, show_result_pyplot
    config, checkpoint = demo_checkpoint
    model = init_model(config, checkpoint, device='cpu')
    photo = _photos(repo_root)[1]
    assert 'Degrade' not in [t['type'] for t in model.cfg.test_pipeline]
    result = inference_model(model, photo)
    img = mmcv.imread(photo)
    assert result.pred_sem_seg.data.shape[-2:] == img.shape[:2]
    out_file = tmp_path / 'overlay.png'
    vis = show_result_pyplot(model, photo, result, show=False, out_file=str(out_file))
    assert vis.shape == img.shape and mmcv.imread(str(out_file)).shape == img.shape
    # an image array instead of a file (inference_model swaps the loader, same result)
    again = inference_model(model, img)
    assert torch.equal(again.pred_sem_seg.data, result.pred_sem_seg.data)


@pytest.fixture(scope='module')
def infer_tool(tool_loader):
    return tool_loader('infer')


def test_infer_tool_writes_overlays_and_label_maps(infer_tool, demo_checkpoint, repo_root,
                                                   tmp_path, capsys):
    config, checkpoint = demo_checkpoint
    infer_tool.main([config, checkpoint, osp.join(repo_root, PHOTOS), '--out-dir',
                     str(tmp_path)])
    captured = capsys.readouterr()
    assert '2 images: label maps in' in captured.out
    assert 'infer: 100%' in captured.err and '2/2' in captured.err  # the progress bar
    for photo in _photos(repo_root):
        name = osp.splitext(osp.basename(photo))[0]
        labels = mmcv.imread(str(tmp_path / 'pred' / f'{name}.png'), flag='unchanged')
        overlay = mmcv.imread(str(tmp_path / 'vis' / f'{name}.png'))
        assert labels.dtype == np.uint8 and labels.shape == mmcv.imread(photo).shape[:2]
        assert labels.max() < 19 and overlay.shape == mmcv.imread(photo).shape


def test_infer_tool_errors(infer_tool, demo_checkpoint, repo_root, tmp_path, monkeypatch):
    config, checkpoint = demo_checkpoint
    photos = osp.join(repo_root, PHOTOS)

    def run(*args):
        with pytest.raises(SystemExit) as info:  # as `python tools/infer.py` runs it
            run_cli(infer_tool.main, [*args, '--out-dir', str(tmp_path / 'out')])
        assert str(info.value).startswith('error: ') and '\n' not in str(info.value)
        return str(info.value)

    assert f'input {tmp_path / "none.jpg"} does not exist' in run(
        config, checkpoint, str(tmp_path / 'none.jpg'))
    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict={'decode_head.conv_seg.weight': torch.zeros(2, 2, 1, 1)}), other)
    msg = run(config, str(other), photos)
    assert 'does not fit the model of' in msg and 'strict' in msg
    degrading = tmp_path / 'degrading.py'
    degrading.write_text(f"_base_ = '{config}'\ntest_pipeline = [dict(type='LoadImageFromFile'),"
                         " dict(type='Degrade', preset='rass_x1', deterministic=True),"
                         " dict(type='PackSegInputs')]\n")
    assert 'degrades the image' in run(str(degrading), checkpoint, photos)
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'broken.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(ValueError, match='cannot read image .*broken.jpg'):  # before the model
        infer_tool.infer(None, infer_tool.list_images([str(bad)]), str(tmp_path / 'out'),
                         progress=False)
    assert not (tmp_path / 'out').exists()

    def bug(*args, **kwargs):
        raise RuntimeError('shapes (1, 19) and (1, 18) do not match')

    monkeypatch.setattr(infer_tool, 'infer', bug)  # a bug, not the user's: its traceback stays
    with pytest.raises(RuntimeError, match='do not match'):
        run_cli(infer_tool.main, [config, checkpoint, photos, '--out-dir', str(tmp_path / 'o')])


def _shipped_configs(repo_root):
    paths = sorted(glob.glob(osp.join(repo_root, 'configs', '**', '*.py'), recursive=True))
    return [osp.relpath(p, repo_root) for p in paths if '_base_' not in p]


NOT_SEGMENTORS = ('configs/scr/',)  # SCR restorers: image in, image out
NOT_MODELS = ('configs/rass/lq_protocol_',)  # rows files of tools/lq_protocol.py
NEED_PRIORS = ('configs/spt/spt_',)  # SPT: SAM masks of each image at inference
SHIPPED = _shipped_configs(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


@pytest.mark.parametrize('config', SHIPPED)
def test_no_degradation_in_any_inference_pipeline(config, repo_root):
    if config.startswith(NOT_SEGMENTORS):
        pytest.skip('a restorer, not a segmentor: mmseg\'s inference API does not apply')
    if config.startswith(NOT_MODELS):
        pytest.skip('the rows of tools/lq_protocol.py, not a model config')
    if config.startswith(NEED_PRIORS):
        pytest.skip('SPT needs the SAM masks of each image at inference (docs/sam_priors.md)')
    if 'mask2former' in config and importlib.util.find_spec('mmdet') is None:
        pytest.skip('needs mmdet')
    cfg = Config.fromfile(osp.join(repo_root, config))
    assert 'Degrade' not in [t['type'] for t in cfg.test_pipeline]  # inference_model, infer.py
    pipeline = _inferencer_pipeline(cfg)  # MMSegInferencer (test_dataloader.dataset.pipeline)
    assert _names(pipeline)[0] == 'InferencerLoader' and 'Degrade' not in _names(pipeline)
    photo = _photos(repo_root)[0]
    test_pipeline = [t for t in cfg.test_pipeline if t['type'] != 'LoadAnnotations']
    a = pipeline(photo)['inputs']
    b = Compose(test_pipeline)(dict(img_path=photo))['inputs']
    assert torch.equal(a, b)
