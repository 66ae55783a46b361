"""Prior extraction: LQ or restored images, resume, stale/broken files, shards, CLI errors."""
import json
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose

from mmseg_rass.sam import (RestorerPriorSource, StandInMaskGenerator, extract_sam_priors,
                            load_sam_prior, read_manifest)
from mmseg_rass.tools_entry import run_cli


class CountingGenerator(StandInMaskGenerator):
    """Stand-in generator that remembers the images it saw (no masks when ``empty``)."""

    def __init__(self, empty=False):
        super().__init__()
        self.images = []
        self.empty = empty

    def generate(self, image):
        self.images.append(image.copy())
        return [] if self.empty else super().generate(image)


def _dataset_cfg(root, degrade=True, split='train'):
    pipeline = [dict(type='LoadImage'), dict(type='Degrade', preset='rass_x1'),
                dict(type='LoadAnnotations'), dict(type='RandomFlip', prob=0.5),
                dict(type='PackSegInputs')]
    if not degrade:
        pipeline.pop(1)
    return dict(type='DemoCityscapesDataset', data_root=str(root),
                data_prefix=dict(img_path=f'leftImg8bit/{split}',
                                 seg_map_path=f'gtFine/{split}'),
                pipeline=pipeline)


def _prior_files(out):
    return sorted(osp.relpath(osp.join(d, f), out) for d, _, fs in os.walk(out) for f in fs
                  if f.endswith('.npz'))


def _extract(cfg, out, gen=None, **kwargs):
    return extract_sam_priors(cfg, out, gen or CountingGenerator(), dict(sam_type='stand_in'),
                              num_masks=5, progress=False, **kwargs)


def test_extraction_on_lq_images_resumes_and_shards(demo_data_root, tmp_path):
    cfg = _dataset_cfg(demo_data_root)
    out = str(tmp_path / 'priors')
    gen = CountingGenerator()
    counts = _extract(cfg, out, gen)
    assert counts == dict(done=4, replaced=0, skipped=0, empty=0, total=4)
    assert len(_prior_files(out)) == 4
    manifest = read_manifest(out)
    assert manifest['num_masks'] == 5 and manifest['img_root'] == str(demo_data_root)
    assert manifest['degradation'] == [dict(preset='rass_x1', severity=None, overrides={})]
    assert manifest['prior_source'] == dict(type='image') and manifest['empty_priors'] == []
    # SAM saw the deterministic LQ image (RGB), not the clean one
    first = sorted(_prior_files(out))[0]
    img_path = osp.join(str(demo_data_root), osp.splitext(first)[0] + '.png')
    lq = Compose([dict(type='LoadImage'),
                  dict(type='Degrade', preset='rass_x1', deterministic=True)])(
                      dict(img_path=img_path))['img']
    clean = Compose([dict(type='LoadImage')])(dict(img_path=img_path))['img']
    assert any(np.array_equal(im, lq[..., ::-1]) for im in gen.images)
    assert not any(np.array_equal(im, clean[..., ::-1]) for im in gen.images)
    prior = load_sam_prior(osp.join(out, first))
    assert prior.masks.shape == (5, ) + lq.shape[:2] and prior.valid.any()
    assert prior.manifest_key == manifest['key']
    # resume: only the missing image is processed
    os.remove(osp.join(out, first))
    gen2 = CountingGenerator()
    assert _extract(cfg, out, gen2) == dict(done=1, replaced=0, skipped=3, empty=0, total=4)
    assert len(gen2.images) == 1 and len(_prior_files(out)) == 4
    # other settings in the same folder are refused
    with pytest.raises(ValueError, match='num_masks'):
        extract_sam_priors(cfg, out, gen2, dict(sam_type='stand_in'), num_masks=6,
                           progress=False)
    # shards split the images without overlap
    sharded = str(tmp_path / 'sharded')
    done = [_extract(cfg, sharded, shard=(i, 2))['done'] for i in range(2)]
    assert done == [2, 2] and _prior_files(sharded) == _prior_files(out)


def test_changed_or_broken_priors_are_reextracted_and_empty_ones_counted(tmp_path):
    from mmseg_rass.datasets.demo_data import make_demo_cityscapes
    root = tmp_path / 'data'
    make_demo_cityscapes(str(root), num_train=3, num_val=1, height=32, width=64)
    cfg, out = _dataset_cfg(root), str(tmp_path / 'priors')
    _extract(cfg, out)
    files = _prior_files(out)
    img = osp.join(str(root), osp.splitext(files[0])[0] + '.png')
    cv2.imwrite(img, 255 - cv2.imread(img))  # the image changed
    with open(osp.join(out, files[1]), 'r+b') as f:  # a broken file
        f.truncate(50)
    gen = CountingGenerator()
    assert _extract(cfg, out, gen) == dict(done=2, replaced=2, skipped=1, empty=0, total=3)
    lq = Compose([dict(type='LoadImage'), dict(type='Degrade', preset='rass_x1',
                                                 deterministic=True)])(dict(img_path=img))['img']
    assert np.array_equal(gen.images[0], lq[..., ::-1])  # the new image's LQ version
    manifest = read_manifest(out)  # the manifest edited by hand (e.g. another SAM): all stale
    manifest['sam_type'] = 'stand_in_v2'
    with open(osp.join(out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f)
    assert extract_sam_priors(cfg, out, CountingGenerator(), dict(sam_type='stand_in_v2'),
                              num_masks=5, progress=False)['replaced'] == 3
    # a generator that finds nothing: counted, warned about, listed in the manifest
    empty_dir = str(tmp_path / 'empty')
    with pytest.warns(UserWarning, match=r'no mask in 3 of 3 images.*empty_priors'):
        counts = _extract(cfg, empty_dir, CountingGenerator(empty=True))
    assert counts['empty'] == 3
    assert read_manifest(empty_dir)['empty_priors'] == _prior_files(empty_dir)
    with pytest.warns(UserWarning, match='3 SAM prior files .* hold no mask'):
        loader = Compose([dict(type='LoadSAMPriors', prior_dir=empty_dir)])
        loader(Compose([dict(type='LoadImage'), dict(type='Degrade', preset='rass_x1')])(
            dict(img_path=img)))


def test_pipeline_without_degradation_needs_clean_priors(demo_data_root, tmp_path):
    cfg = _dataset_cfg(demo_data_root, degrade=False)
    with pytest.raises(ValueError, match='no Degrade step, so SAM would see the clean image'):
        _extract(cfg, str(tmp_path / 'a'))
    assert _extract(cfg, str(tmp_path / 'a'), clean_priors=True)['done'] == 4
    cfg['pipeline'].insert(1, dict(type='LoadSAMPriors', prior_dir='x', clean_priors=True))
    assert _extract(cfg, str(tmp_path / 'b'))['done'] == 4  # the config says so
    assert read_manifest(str(tmp_path / 'b'))['degradation'] == []


def test_priors_from_a_restorer(repo_root, demo_data_root, tmp_path, cached_mmseg_model_index):
    source = RestorerPriorSource.from_config(osp.join(repo_root, 'configs/scr/scr_tiny_demo.py'))
    scr = source.model_cfg
    assert scr['type'] == 'SCRRestorer' and scr['arch'] == 'tiny'
    cfg, out = _dataset_cfg(demo_data_root, split='val'), str(tmp_path / 'restored')
    gen = CountingGenerator()
    assert _extract(cfg, out, gen, prior_source=source)['done'] == 2
    manifest = read_manifest(out)
    assert manifest['prior_source'] == dict(type='restorer', model=json.loads(json.dumps(scr)),
                                            weights_sha256=source.info['weights_sha256'])
    img_path = osp.join(str(demo_data_root), osp.splitext(_prior_files(out)[0])[0] + '.png')
    lq = Compose([dict(type='LoadImage'), dict(type='Degrade', preset='rass_x1',
                                                 deterministic=True)])(dict(img_path=img_path))
    restored = source(lq['img'])
    assert restored.shape == lq['img'].shape and restored.dtype == np.uint8
    assert np.array_equal(gen.images[0], restored)  # SAM saw the restored image, Eq. 2
    assert not np.array_equal(restored, lq['img'][..., ::-1])
    out_ = Compose([dict(type='LoadSAMPriors', prior_dir=out, prior_source='restorer')])(lq)
    assert out_['gt_sam_masks'].shape[:2] == lq['img'].shape[:2]
    # another restorer (other weights) never mixes into the same folder
    other = RestorerPriorSource(dict(scr, init_seed=1))  # e.g. other SCR weights
    assert other.info['weights_sha256'] != source.info['weights_sha256']
    with pytest.raises(ValueError, match=r"differs in \['prior_source'\]"):
        _extract(cfg, out, prior_source=other)
    # an R2S config's restorer_checkpoint is loaded: never a silently untrained restorer
    r2s = tmp_path / 'r2s.py'
    r2s.write_text(f"_base_ = ['{osp.join(repo_root, 'configs/segsr/segsr_r2s_demo.py')}']\n"
                   f"model = dict(restorer_checkpoint='{tmp_path / 'none.pth'}')\n")
    with pytest.raises(FileNotFoundError, match=r'restorer checkpoint .*none\.pth not found'):
        RestorerPriorSource.from_config(str(r2s))


def test_cli(repo_root, tool_loader, demo_data_root, tmp_path, capsys,
             cached_mmseg_model_index):
    tool = tool_loader('extract_sam_priors')
    config = osp.join(repo_root, 'configs/spd/spd_segformer-tiny_demo-cityscapes-lq.py')
    root = f'train_dataloader.dataset.data_root={demo_data_root}'
    out = ['--out', str(tmp_path / 'p')]

    def error(*argv):
        """The one line `python tools/extract_sam_priors.py ...` ends with (status 1)."""
        with pytest.raises(SystemExit) as exit_info:
            run_cli(tool.main, [config, *out, *argv])
        assert exit_info.value.code.startswith('error: ') and '\n' not in exit_info.value.code
        return exit_info.value.code

    assert re.search(r'SAM checkpoint .*none\.pth.* not found',
                     error('--sam-checkpoint', str(tmp_path / 'none.pth'), '--cfg-options', root))
    with pytest.raises(SystemExit) as exit_info:  # argparse: --shard i/n needs 0 <= i < n
        tool.main([config, *out, '--stand-in', '--shard', '2/2'])
    assert exit_info.value.code == 2
    assert error('--stand-in', '--prior-source', 'restorer') == \
        'error: --prior-source restorer and --restorer-config go together'
    assert error('--stand-in', '--restorer-checkpoint', str(tmp_path / 'r.pth')) == \
        'error: --restorer-checkpoint needs --prior-source restorer --restorer-config'
    assert error('--stand-in', '--prior-source', 'restorer', '--restorer-config',
                 str(tmp_path / 'none.py')) == \
        f'error: restorer config {tmp_path / "none.py"} not found'
    tool.main([config, *out, '--stand-in', '--no-progress', '--num-masks', '3', '--shard', '1/2',
               '--cfg-options', root])
    assert '2 written (0 of them replaced stale or broken files, 0 without any mask), 0 ' \
        'already current, 2 in shard 1/2' in capsys.readouterr().out
    assert read_manifest(str(tmp_path / 'p'))['sam_type'] == 'stand_in'
    # other settings into the same folder: refused, naming the manifest and what differs
    assert re.search(r"manifest.json was written with other settings \(differs in "
                     r"\['num_masks'\]\): use another --out folder",
                     error('--stand-in', '--no-progress', '--num-masks', '4', '--cfg-options',
                           root))
