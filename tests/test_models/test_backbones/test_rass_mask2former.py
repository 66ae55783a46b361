"""RASS + Mask2Former (the paper's head): the shipped config builds and trains on the CPU."""
import importlib
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

init_default_scope('mmseg')
TINY = 'tests/configs/rass_mask2former_tiny.py'  # the shipped config at test size


def _batch(n=2, size=64, classes=5):
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                             ori_shape=(size, size)))
        labels = torch.randint(0, classes, (1, size, size), generator=gen)
        labels[..., :size // 4] = 255
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
              for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def test_shipped_config_is_the_authors_recipe(repo_root):
    cfg = Config.fromfile(osp.join(repo_root, 'configs/rass/rass_mask2former_ade20k_lq.py'))
    assert cfg.model.backbone.type == 'RASSBackbone' and cfg.model.decode_head.type == 'Mask2FormerHead'
    optim = cfg.optim_wrapper
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.lr == 1e-4
    assert optim.optimizer.weight_decay == 0.05 and optim.clip_grad.max_norm == 0.01
    assert optim.paramwise_cfg.custom_keys['backbone'].lr_mult == 0.1
    assert cfg.param_scheduler[0].type == 'PolyLR' and cfg.param_scheduler[0].power == 0.9
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2
    steps = [t['type'] for t in cfg.train_pipeline]
    # the authors degrade the augmented crop: Degrade after resize/crop/flip/colour jitter
    assert steps.index('Degrade') == steps.index('PhotoMetricDistortion') + 1


def test_trains_and_predicts_on_cpu(repo_root):
    cfg = Config.fromfile(osp.join(repo_root, TINY))
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {id(p): g['lr'] for g in optim.optimizer.param_groups for p in g['params']}
    # backbone x0.1, projections included (the authors' 'backbone' multiplier); head x1
    assert lrs[id(model.backbone.projections[0].body[0].conv.weight)] == pytest.approx(1e-5)
    assert lrs[id(model.backbone.unet.conv_in.base_layer.weight)] == pytest.approx(1e-5)
    assert lrs[id(model.decode_head.cls_embed.weight)] == pytest.approx(1e-4)
    before = model.decode_head.cls_embed.weight.clone()
    losses = model.train_step(_batch(), optim)
    assert torch.isfinite(losses['loss']) and 'decode.loss_mask' in losses
    assert not torch.equal(before, model.decode_head.cls_embed.weight)
    model.eval()
    batch = _batch(n=1)
    out = model.test_step(batch)
    assert out[0].pred_sem_seg.shape == (64, 64)


def test_paper_and_released_configs_evaluate_as_the_reference(repo_root, monkeypatch):
    """Test resize short side 512 / long side <= 2048 with PIL bilinear (Detectron2's
    ResizeShortestEdge), padding to /8, the backbone's square windows with averaged features."""
    import numpy as np
    from mmcv.transforms import Compose
    from PIL import Image
    for name in ('rass_mask2former_ade20k_lq.py', 'rass_mask2former_released_ade20k_val.py',
                 'rass_mask2former_released_real_lq.py', 'rass_ade20k_lq.py',
                 'rass_real_lq_test.py'):
        cfg = Config.fromfile(osp.join(repo_root, 'configs/rass', name))
        assert cfg.model.backbone.slide_inference and cfg.model.test_cfg.mode == 'whole', name
        assert cfg.model.data_preprocessor.test_cfg == dict(size_divisor=8), name
        resize = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize']
        assert resize == [dict(type='Resize', scale=(2048, 512), keep_ratio=True,
                               backend='pillow')], name
        # black padding where only evaluation happens (Detectron2 pads the uint8 image with 0)
        assert cfg.model.data_preprocessor.pad_val == (-1 if 'released' in name else 0), name
    rgb = np.random.default_rng(0).integers(0, 256, (100, 900, 3), dtype=np.uint8)
    out = Compose(resize)(dict(img=rgb))['img']
    # Detectron2: 512 / 100 -> 512 x 4608 > 2048 -> x 2048 / 4608 -> int(227.6 + 0.5) x 2048
    assert out.shape == (228, 2048, 3)
    np.testing.assert_array_equal(out, np.asarray(Image.fromarray(rgb).resize((2048, 228),
                                                                              Image.BILINEAR)))

    cfg = Config.fromfile(osp.join(repo_root, TINY))
    model = MODELS.build(cfg.model)
    model.eval()
    windows = []
    whole = model.backbone._forward_whole
    monkeypatch.setattr(model.backbone, '_forward_whole',
                        lambda x: windows.append(tuple(x.shape[-2:])) or whole(x))
    sample = SegDataSample(metainfo=dict(img_shape=(64, 100), ori_shape=(64, 100)))
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 100), dtype=torch.uint8)],
                data_samples=[sample])
    out = model.test_step(data)
    assert windows == [(64, 64), (64, 64)]  # padded to 64 x 104: windows x 0..64, 40..104
    assert out[0].pred_sem_seg.shape == (64, 100)


def test_without_mmdet_the_config_says_how_to_install_it(monkeypatch):
    import importlib.util
    from mmseg_rass.models.backbones import rass_mmdet_check
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'mmdet' else real(name, *a))
    with pytest.raises(ImportError, match='mmdet is not installed.*setup_env.sh.*mmdet==3.3.0'):
        importlib.reload(rass_mmdet_check)


def test_uperhead_configs_use_the_authors_solver(repo_root):
    for name in ('rass_ade20k_lq.py', 'rass_cityscapes_lq.py'):
        cfg = Config.fromfile(osp.join(repo_root, 'configs/rass', name))
        optim = cfg.optim_wrapper
        assert optim.clip_grad == dict(max_norm=0.01, norm_type=2)
        assert optim.paramwise_cfg.custom_keys == {'backbone': dict(lr_mult=0.1)}  # + projections
        assert optim.paramwise_cfg.norm_decay_mult == 0.0
        assert [s.type for s in cfg.param_scheduler] == ['PolyLR']  # no warm-up
        assert dict(type='RASSPromptHook') in cfg.custom_hooks


def test_released_test_sets_load_in_the_authors_layout(repo_root, tmp_path):
    import cv2
    import numpy as np
    from mmseg.registry import DATASETS
    root = tmp_path / 'RealLQ' / 'ADEChallengeData2016'
    for sub in ('images/validation', 'annotations_detectron2/validation'):
        (root / sub).mkdir(parents=True)
    label = np.full((32, 48), 255, np.uint8)
    label[:16] = 0
    label[16:, :24] = 149
    for name in ('ADE_val_00000001', 'ADE_val_00000002'):
        cv2.imwrite(str(root / 'images/validation' / f'{name}.jpg'),
                    np.zeros((32, 48, 3), np.uint8))
        cv2.imwrite(str(root / 'annotations_detectron2/validation' / f'{name}.png'), label)
    # (rass_mask2former_released_real_lq.py only changes the data_root of the ADE20K-val one)
    for config in ('rass_mask2former_released_real_lq.py', 'rass_real_lq_test.py'):
        cfg = Config.fromfile(osp.join(repo_root, 'configs/rass', config))
        assert 'Degrade' not in [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
        dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(root)))
        assert len(dataset) == 2
        gt = dataset[0]['data_samples'].gt_sem_seg.data
        assert set(gt.unique().tolist()) == {0, 149, 255}  # Detectron2 labels kept as they are
