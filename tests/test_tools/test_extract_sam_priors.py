"""tools/extract_sam_priors.py: LQ images, resume, shards, manifest, CLI errors."""
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope

from mmseg_rass.sam import (StandInMaskGenerator, extract_sam_priors, load_sam_prior,
                            read_manifest)


class CountingGenerator(StandInMaskGenerator):
    """Stand-in generator that remembers the images it saw."""

    def __init__(self):
        super().__init__()
        self.images = []

    def generate(self, image):
        self.images.append(image.copy())
        return super().generate(image)


def _dataset_cfg(root):
    return dict(type='DemoCityscapesDataset', data_root=str(root),
                data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
                pipeline=[dict(type='LoadImage'), dict(type='Degrade', preset='rass_x1'),
                          dict(type='LoadAnnotations'), dict(type='RandomFlip', prob=0.5),
                          dict(type='PackSegInputs')])


def _prior_files(out):
    return sorted(osp.relpath(osp.join(d, f), out) for d, _, fs in os.walk(out) for f in fs
                  if f.endswith('.npz'))


def test_extraction_on_lq_images_resumes_and_shards(demo_data_root, tmp_path):
    init_default_scope('mmseg')
    cfg = _dataset_cfg(demo_data_root)
    out = str(tmp_path / 'priors')
    gen = CountingGenerator()
    counts = extract_sam_priors(cfg, out, gen, dict(sam_type='stand_in'), num_masks=5,
                                progress=False)
    assert counts == dict(done=4, skipped=0, total=4) and len(_prior_files(out)) == 4
    manifest = read_manifest(out)
    assert manifest['num_masks'] == 5 and manifest['img_root'] == str(demo_data_root)
    assert manifest['degradation'] == [dict(type='Degrade', preset='rass_x1', deterministic=True)]
    # SAM saw the deterministic LQ image (RGB), not the clean one
    first = sorted(_prior_files(out))[0]
    img_path = osp.join(str(demo_data_root), osp.splitext(first)[0] + '.png')
    lq = Compose([dict(type='LoadImage'),
                  dict(type='Degrade', preset='rass_x1', deterministic=True)])(
                      dict(img_path=img_path))['img']
    clean = Compose([dict(type='LoadImage')])(dict(img_path=img_path))['img']
    assert any(np.array_equal(im, lq[..., ::-1]) for im in gen.images)
    assert not any(np.array_equal(im, clean[..., ::-1]) for im in gen.images)
    masks, valid = load_sam_prior(osp.join(out, first))
    assert masks.shape == (5, ) + lq.shape[:2] and valid.any()
    # resume: only the missing image is processed
    os.remove(osp.join(out, first))
    gen2 = CountingGenerator()
    assert extract_sam_priors(cfg, out, gen2, dict(sam_type='stand_in'), num_masks=5,
                              progress=False) == dict(done=1, skipped=3, total=4)
    assert len(gen2.images) == 1 and len(_prior_files(out)) == 4
    # other settings in the same folder are refused
    with pytest.raises(ValueError, match='num_masks'):
        extract_sam_priors(cfg, out, gen2, dict(sam_type='stand_in'), num_masks=6,
                           progress=False)
    # shards split the images without overlap
    sharded = str(tmp_path / 'sharded')
    done = [extract_sam_priors(cfg, sharded, StandInMaskGenerator(), dict(sam_type='stand_in'),
                               num_masks=5, shard=(i, 2), progress=False)['done']
            for i in range(2)]
    assert done == [2, 2] and _prior_files(sharded) == _prior_files(out)


def _load_tool(repo_root):
    spec = importlib.util.spec_from_file_location(
        'extract_sam_priors_tool', osp.join(repo_root, 'tools', 'extract_sam_priors.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_cli(repo_root, demo_data_root, tmp_path, capsys):
    tool = _load_tool(repo_root)
    config = osp.join(repo_root, 'configs/spd/spd_segformer-tiny_demo-cityscapes-lq.py')
    root = f'train_dataloader.dataset.data_root={demo_data_root}'
    with pytest.raises(SystemExit, match=r'SAM checkpoint .*none\.pth.* not found'):
        tool.main([config, '--out', str(tmp_path / 'p'), '--sam-checkpoint',
                   str(tmp_path / 'none.pth'), '--cfg-options', root])
    with pytest.raises(SystemExit):
        tool.main([config, '--out', str(tmp_path / 'p'), '--stand-in', '--shard', '2/2'])
    tool.main([config, '--out', str(tmp_path / 'p'), '--stand-in', '--no-progress',
               '--num-masks', '3', '--shard', '1/2', '--cfg-options', root])
    assert '2 written, 0 already present, 2 in shard 1/2' in capsys.readouterr().out
    assert read_manifest(str(tmp_path / 'p'))['sam_type'] == 'stand_in'
