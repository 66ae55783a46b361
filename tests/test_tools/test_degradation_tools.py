"""tools/make_lq_set.py, tools/visualize_degradation.py and tools/benchmark_degradation.py."""
import hashlib
import importlib.util
import json

import cv2
import numpy as np
import pytest
import torch


def _tool(repo_root, name):
    spec = importlib.util.spec_from_file_location(name, f'{repo_root}/tools/{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_make_lq_set_is_reproducible_and_writes_manifest(repo_root, demo_data_root, tmp_path):
    tool = _tool(repo_root, 'make_lq_set')
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


def test_make_lq_set_errors_name_the_problem(repo_root, tmp_path):
    tool = _tool(repo_root, 'make_lq_set')
    with pytest.raises(SystemExit, match='Degrade: severity='):
        tool.main(['--src', str(tmp_path), '--out', str(tmp_path / 'o'), '--preset', 'blur'])
    with pytest.raises(SystemExit, match='no images'):
        tool.main(['--src', str(tmp_path), '--out', str(tmp_path / 'o')])


def test_visualize_grid_layout(repo_root):
    tool = _tool(repo_root, 'visualize_degradation')
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    grid = tool.make_grid(img, 'x.png', (24, 40))
    assert grid.shape == (24 * 6, 40 * 6, 3) and grid.dtype == np.uint8


def test_benchmark_reference_restatement_is_sane(repo_root):
    tool = _tool(repo_root, 'benchmark_degradation')
    img = tool._scene(64, 96)
    rgb = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255.
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 50])
    codec = cv2.imdecode(buf, cv2.IMREAD_COLOR).astype(float)
    diff = tool.ref_diffjpeg(rgb, torch.tensor([50.]))[0].permute(1, 2, 0).numpy()[..., ::-1]
    psnr = lambda a: 10 * np.log10(255 ** 2 / np.mean((a - img) ** 2))  # noqa: E731
    assert abs(psnr(diff * 255) - psnr(codec)) < 1.0  # DiffJPEG ≈ libjpeg at equal quality
    out = tool.reference_degrade(rgb)
    assert out.shape == rgb.shape and 0 <= out.min() and out.max() <= 1
