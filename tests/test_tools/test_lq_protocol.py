"""tools/lq_protocol.py (the RASS paper's Table 1 protocol) at demo scale: tiny SegFormers (clean
and "fine-tuned"), the tiny SCR restorer from its LoRA file through the shipped R2S config, two
generated demo val images; cells against mmseg's own numbers, restoration PSNR against a
hand-computed one, the content-keyed cache, the paper's rows, merging and one-line errors."""
import json
import os
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS, TRANSFORMS
from PIL import Image

from mmseg_rass.evaluation import lq_protocol as lqp
from mmseg_rass.evaluation.restoration_metric import psnr
from mmseg_rass.lora import make_lora_config, save_scr_lora
from mmseg_rass.models.diffusion import TINY_UNET_CONFIG, build_unet

TINY_SEGFORMER = """
_base_ = ['mmseg::_base_/models/segformer_mit-b0.py', 'mmseg::_base_/default_runtime.py']
model = dict(
    backbone=dict(embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
    decode_head=dict(in_channels=[8, 8, 8, 8], channels=16))
"""
R2S_CONFIG = 'configs/rass/restore_then_segment_demo.py'
NO_WORKERS = {'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False}


@pytest.fixture(scope='module')
def models(tmp_path_factory, demo_data_root, cached_mmseg_model_index, random_checkpoint):
    """Configs and checkpoints of the rows, on a copy of the demo data."""
    folder = tmp_path_factory.mktemp('lq_protocol')
    config = folder / 'tiny_segformer.py'
    config.write_text(TINY_SEGFORMER)
    random_checkpoint(config, folder / 'clean.pth', seed=0)
    random_checkpoint(config, folder / 'ft.pth', seed=1)
    torch.manual_seed(2)
    unet = build_unet(config=TINY_UNET_CONFIG)
    lora = make_lora_config(rank=4)
    unet.add_adapter(lora)
    save_scr_lora(str(folder / 'scr_lora.safetensors'), unet, lora)
    data = folder / 'data'
    os.system(f'cp -r {demo_data_root} {data}')
    return dict(folder=folder, config=str(config), clean=str(folder / 'clean.pth'),
                ft=str(folder / 'ft.pth'), lora=str(folder / 'scr_lora.safetensors'),
                data=str(data))


def _rows(m, **extra):
    return [lqp.Row(name='SegFormer', config=m['config'], checkpoint=m['clean'],
                    restorer_config=R2S_CONFIG, restorer_checkpoint=m['lora'],
                    ft_config=m['config'], ft_checkpoint=m['ft'], **extra),
            lqp.Row(name='FT only', ft_config=m['config'], ft_checkpoint=m['ft'])]


def _sets(m, paper=None):
    return [lqp.EvalSet('demo', data_root=m['data'], paper=paper, cfg_options=NO_WORKERS)]


@pytest.fixture(scope='module')
def first(models, tmp_path_factory, one_torch_thread):
    """One run over the demo set: (result, work dir, printed lines)."""
    work_dir = tmp_path_factory.mktemp('lq_work')
    lines = []
    result = lqp.run_protocol(_rows(models), _sets(models, paper='ade20k'), str(work_dir),
                              fps_warmup=1, say=lambda text, **_: lines.append(text))
    return result, work_dir, lines


def test_cells_of_every_setting(first, models):
    result, work_dir, lines = first
    row, ft_only = result['rows']
    cells = row['cells']['demo']
    assert set(cells) == {'dt', 'r2s', 'ft', 'restoration'}
    assert set(ft_only['cells']['demo']) == {'ft'}
    metrics = ('aAcc', 'mIoU', 'mAcc', 'IoU', 'Acc')
    assert [cells['ft'][k] for k in metrics] == [ft_only['cells']['demo']['ft'][k]
                                                 for k in metrics]
    for setting in ('dt', 'r2s', 'ft'):
        cell = cells[setting]
        present = [v for v in cell['IoU'].values() if v is not None]
        assert cell['mIoU'] == pytest.approx(np.mean(present), abs=0.01)
        assert cell['fps'] > 0 and cell['fps_images'] == 2 and cell['fps_warmup'] == 1
    assert cells['dt']['IoU'] != cells['ft']['IoU']  # two models, two results
    assert [ln.split(':')[0] for ln in lines[1:6]] == [
        '[DT] SegFormer on demo', '[R2S] SegFormer on demo', '[FT] SegFormer on demo',
        '[restoration] SegFormer on demo', '[FT] FT only on demo']
    model = MODELS.build(Config.fromfile(models['config']).model)
    total = sum(p.numel() for p in model.parameters())
    assert row['params'] == dict(total=total, trainable=total, model='ft')
    assert row['fps'] == dict(fps=cells['ft']['fps'], model='ft', eval_set='demo')
    assert result['eval_sets'][0]['num_images'] == 2
    assert result['eval_sets'][0]['degradation'] == dict(type='Degrade', preset='rass_x1')
    saved = json.loads((work_dir / 'lq_protocol.json').read_text())
    assert saved['rows'][0]['cells']['demo']['r2s']['mIoU'] == cells['r2s']['mIoU']
    summary = saved['summary']  # flat, for scripts (issue 21's main job)
    assert summary['SegFormer']['demo']['r2s_miou'] == cells['r2s']['mIoU']
    assert summary['SegFormer']['demo']['lq_psnr'] == cells['restoration']['lq']['PSNR']
    assert summary['SegFormer']['demo']['restored_psnr'] == \
        cells['restoration']['restored']['PSNR']
    assert summary['FT only']['demo'] == dict(ft_miou=ft_only['cells']['demo']['ft']['mIoU'],
                                              ft_fps=ft_only['cells']['demo']['ft']['fps'])


def test_lq_psnr_is_the_degraded_image_against_the_clean_one(first, models):
    """Restoration cell: LQ PSNR recomputed by hand from Degrade's deterministic output."""
    result, _, _ = first
    cell = result['rows'][0]['cells']['demo']['restoration']
    degrade = TRANSFORMS.build(dict(type='Degrade', preset='rass_x1', deterministic=True))
    values = []
    val = os.path.join(models['data'], 'leftImg8bit', 'val', 'demo_city')
    for name in sorted(os.listdir(val)):
        path = os.path.join(val, name)
        clean = np.array(Image.open(path))[..., ::-1].copy()  # BGR, as mmcv loads
        lq = degrade(dict(img=clean.copy(), img_path=path))['img']
        values.append(psnr(torch.from_numpy(lq).permute(2, 0, 1).float(),
                           torch.from_numpy(clean).permute(2, 0, 1).float()))
    assert cell['lq']['PSNR'] == pytest.approx(np.mean(values), abs=1e-3)
    assert 0 < cell['restored']['SSIM'] <= 1 and cell['restored']['PSNR'] > 0


def test_table_shows_the_papers_row_labelled(first):
    result, work_dir, _ = first
    table = (work_dir / 'lq_protocol.md').read_text()
    dt, r2s, ft = (result['rows'][0]['cells']['demo'][k]['mIoU'] for k in ('dt', 'r2s', 'ft'))
    assert f'| SegFormer | {dt:.2f} | {r2s:.2f} | {ft:.2f} |' in table
    assert '| *↳ SegFormer, paper* | *26.37* | *44.34* | *34.57* | *–* | *84.7M* | *84.7M* |' \
        in table
    assert '| FT only | – | – | ' in table and 'FT only, paper' not in table
    assert "demo = the paper's degraded ADE20K-val" in table and 'Ka1Guan/RASS' in table
    assert re.search(r'\| SegFormer \| demo \| \d+\.\d\d \| 0\.\d{4} \| \d+\.\d\d \|', table)


def test_cache_follows_contents(models, tmp_path, monkeypatch, one_torch_thread,
                                random_checkpoint):
    """Cached cells are reused until a checkpoint's bytes or a test image change."""
    work_dir = str(tmp_path / 'work')
    rows = [_rows(models)[1]]
    data = tmp_path / 'data'
    os.system(f'cp -r {models["data"]} {data}')
    sets = [lqp.EvalSet('demo', data_root=str(data), cfg_options=NO_WORKERS)]
    evaluated, original = [], lqp._evaluate
    monkeypatch.setattr(lqp, '_evaluate', lambda *a: evaluated.append(1) or original(*a))
    quiet = dict(fps_warmup=1, say=lambda *a, **k: None)
    first = lqp.run_protocol(rows, sets, work_dir, **quiet)
    again = lqp.run_protocol(rows, sets, work_dir, **quiet)
    assert len(evaluated) == 1 and again['rows'] == first['rows']
    image = sorted((data / 'leftImg8bit' / 'val' / 'demo_city').iterdir())[0]
    stat = os.stat(image)
    pixels = np.array(Image.open(image))
    pixels[:16] = 0
    Image.fromarray(pixels).save(image)  # edited in place, mtime put back
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited = lqp.run_protocol(rows, sets, work_dir, **quiet)
    assert len(evaluated) == 2
    assert edited['eval_sets'][0]['data_sha256'] != first['eval_sets'][0]['data_sha256']
    ft = tmp_path / 'ft.pth'
    random_checkpoint(models['config'], ft, seed=5)
    lqp.run_protocol([lqp.Row('FT only', ft_config=models['config'], ft_checkpoint=str(ft))],
                     sets, work_dir, **quiet)
    random_checkpoint(models['config'], ft, seed=6)  # retrained to the same file name
    lqp.run_protocol([lqp.Row('FT only', ft_config=models['config'], ft_checkpoint=str(ft))],
                     sets, work_dir, **quiet)
    assert len(evaluated) == 4


def test_merge_and_cli(first, models, tool_loader, tmp_path, capsys):
    result, work_dir, _ = first
    tool = tool_loader('lq_protocol')
    other = tmp_path / 'other'
    argv = ['--ft', models['config'], models['ft'], '--name', 'Another', '--eval-sets',
            f'demo={models["data"]}', '--fps-warmup', '1', '--work-dir', str(other),
            '--set-options', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False']
    tool.main(argv + ['--paper', 'RASS'])
    out = capsys.readouterr().out
    assert '| Another | – | – | ' in out
    assert json.loads((other / 'lq_protocol.json').read_text())['rows'][0]['cells']['demo'][
        'ft']['mIoU'] == result['rows'][0]['cells']['demo']['ft']['mIoU']
    moved = json.loads((other / 'lq_protocol.json').read_text())
    moved['device'] = 'cuda (a GPU)'  # as if measured elsewhere
    (other / 'lq_protocol.json').write_text(json.dumps(moved))
    tool.main(['--merge', str(work_dir / 'lq_protocol.json'), str(other / 'lq_protocol.json'),
               '--work-dir', str(tmp_path / 'merged')])
    merged = json.loads((tmp_path / 'merged' / 'lq_protocol.json').read_text())
    assert [r['name'] for r in merged['rows']] == ['SegFormer', 'FT only', 'Another']
    assert 'their FPS are not comparable' in (tmp_path / 'merged' / 'lq_protocol.md').read_text()
    with pytest.raises(SystemExit):
        tool.main(['--merge', str(work_dir / 'lq_protocol.json'),
                   str(work_dir / 'lq_protocol.json'), '--work-dir', str(tmp_path / 'm2')])
    assert "row 'SegFormer' of" in capsys.readouterr().err


@pytest.mark.parametrize('case, message', [
    ('no model', 'pass CONFIG CHECKPOINT'),
    ('config', r"row 'missing': config .*missing.py does not exist"),
    ('checkpoint', 'checkpoint .*missing.pth does not exist'),
    ('set', "unknown evaluation set 'ade'"),
    ('classes', 'predicts 150 classes, evaluation set demo has 19'),
    ('options', 'predicts 150 classes, evaluation set demo has 19'),
    ('strict', r'does not match the model of the config: \d+ missing keys'),
    ('data', 'test dataset of evaluation set demo (cannot be built|is empty)'),
    ('names', 'are not unique'),
    ('lora', 'is a LoRA file, but .* takes no scr_lora'),
    ('restorer', 'has no restorer model'),
])
def test_cli_errors_are_one_line(case, message, models, tool_loader, tmp_path, capsys):
    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict=torch.nn.Linear(2, 2).state_dict()), other)
    ade = tmp_path / 'ade.py'
    ade.write_text(TINY_SEGFORMER.replace('channels=16', 'channels=16, num_classes=150'))
    rows = tmp_path / 'rows.json'
    rows.write_text(json.dumps(dict(rows=[dict(name='a', ft_config=models['config'],
                                                ft_checkpoint=models['ft'])] * 2)))
    sets = ['--eval-sets', f'demo={models["data"]}']
    argv = {
        'no model': sets,
        'config': [str(tmp_path / 'missing.py'), models['clean']] + sets,
        'checkpoint': [models['config'], str(tmp_path / 'missing.pth')] + sets,
        'set': [models['config'], models['clean'], '--eval-sets', 'ade'],
        'classes': [str(ade), models['clean']] + sets,
        'options': [models['config'], models['clean'], '--cfg-options',
                    'model.decode_head.num_classes=150'] + sets,
        'strict': [models['config'], str(other)] + sets,
        'data': [models['config'], models['clean'], '--eval-sets', f'demo={tmp_path}'],
        'names': ['--rows', str(rows)] + sets,
        'lora': [models['config'], models['clean'], '--restorer', 'configs/segsr/'
                 'segsr_tiny_demo.py', models['lora']] + sets,
        'restorer': [models['config'], models['clean'], '--restorer', models['config']] + sets,
    }[case]
    work_dir = tmp_path / 'wd'
    with pytest.raises(SystemExit) as exit_info:
        tool_loader('lq_protocol').main(argv + ['--work-dir', str(work_dir)])
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert re.search(message, err[-1]), err
    if case != 'no model':  # argparse prints its usage first
        assert len(err) == 1 and 'Traceback' not in err[0]
    assert not (work_dir / 'cells').exists()


def test_shipped_demo_rows_file(repo_root):
    rows, sets = lqp.load_rows(os.path.join(repo_root, 'configs/rass/lq_protocol_demo.py'))
    assert [r.name for r in rows] == ['FPN-R18', 'RASS (tiny random SD)']
    assert [s.name for s in sets] == ['demo']
    for row in rows:
        for config in (row.config, row.restorer_config, row.ft_config):
            assert config is None or os.path.isfile(os.path.join(repo_root, config))
    with pytest.raises(lqp.BenchmarkError, match="unknown keys \\['checkpont'\\]"):
        lqp.row_from_dict(dict(name='x', checkpont='y'), 'rows file r.py')


def test_every_named_evaluation_set_has_a_test_dataloader(repo_root, cached_mmseg_model_index):
    for name, preset in lqp.EVAL_SETS.items():
        cfg = Config.fromfile(os.path.join(repo_root, preset['config']))
        assert cfg.test_dataloader.dataset.pipeline, name
        assert preset['paper'] in (None, *lqp.PAPER_COLUMNS)
    with pytest.raises(lqp.BenchmarkError, match='evaluation set real-lq cannot be built'):
        lqp.load_eval_set(lqp.EvalSet('real-lq', data_root='/nonexistent'))
