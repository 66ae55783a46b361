"""tools/make_lq_set.py, tools/visualize_degradation.py and tools/benchmark_degradation.py."""
import hashlib
import json

import cv2
import numpy as np
import pytest
import torch


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_make_lq_set_is_reproducible_and_writes_manifest(tool_loader, demo_data_root, tmp_path):
    tool = tool_loader('make_lq_set')
    src = demo_data_root / 'leftImg8bit' / 'val'
    for out in ('a', 'b'):
        tool.main(['--src', str(src), '--out', str(tmp_path / out), '--preset', 'mixed',
                   '--severity', '2', '--set', 'jpeg_range2=[40,60]'])
    manifest = json.loads((tmp_path / 'a' / 'lq_manifest.json').read_text())
    assert manifest['format'] == 'mmseg_rass.lq_manifest.v1' and manifest['severity'] == 2
    assert manifest['config']['jpeg_range2'] == [40, 60]
    files = sorted(p.relative_to(src) for p in src.rglob('*.png'))
    assert len(manifest['images']) == len(files) == 2
    for rel in files:
        a = cv2.imread(str(tmp_path / 'a' / rel), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / 'b' / rel), cv2.IMREAD_UNCHANGED)
        entry = manifest['images'][str(rel)]
        assert np.array_equal(a, b) and a.shape == cv2.imread(str(src / rel)).shape
        assert entry['sha256'] == hashlib.sha256(a.tobytes()).hexdigest()
        assert 40 <= entry['params']['jpeg2'] <= 60 and entry['source'] == str(rel)


def test_make_lq_set_errors_name_the_problem(tool_loader, tmp_path):
    tool = tool_loader('make_lq_set')
    with pytest.raises(SystemExit, match='Degrade: severity='):
        tool.main(['--src', str(tmp_path), '--out', str(tmp_path / 'o'), '--preset', 'blur'])
    with pytest.raises(SystemExit, match='no images'):
        tool.main(['--src', str(tmp_path), '--out', str(tmp_path / 'o')])


def test_visualize_grid_layout(tool_loader):
    tool = tool_loader('visualize_degradation')
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    grid = tool.make_grid(img, 'x.png', (24, 40))
    assert grid.shape == (24 * 6, 40 * 6, 3) and grid.dtype == np.uint8


def test_benchmark_needs_the_basicsr_sdist_and_maps_our_preset(tool_loader, tmp_path):
    tool = tool_loader('benchmark_degradation')
    with pytest.raises(SystemExit, match='--basicsr-src is required'):
        tool.main([])
    with pytest.raises(SystemExit, match='degradations.py not found'):
        tool.main(['--basicsr-src', str(tmp_path)])
    from mmseg_rass.transforms.degradation_pipeline import make_config
    cfg = make_config('realesrgan_x4')
    opt = tool.basicsr_opt(cfg)
    assert opt['scale'] == 4 and opt['kernel_range'] == [7, 9, 11, 13, 15, 17, 19, 21]
    assert opt['noise_range2'] == cfg['noise_range2'] and opt['final_sinc_prob'] == 0.8
    img = torch.from_numpy(tool._scene(48, 64)).permute(2, 0, 1).contiguous()
    for preset, name in (('rass_x1', 'DegradeSegDataPreProcessor.degrade'),
                         ('realesrgan_x4', 'degrade_batch')):
        run, label = tool.batched_fn(preset, [img] * 3)
        out = run()
        assert label == name and len(out) == 3
        assert tuple(out[0].shape) == ((3, 48, 64) if preset == 'rass_x1' else (3, 12, 16))
