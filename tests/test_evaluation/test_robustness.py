"""Robustness benchmark logic: summary figures, config surgery, resume cache, reports, errors."""
import json

import pytest

from mmseg_rass.evaluation import robustness as rob


def _cell(family, severity, miou):
    return dict(family=family, severity=severity, aAcc=90.0, mIoU=miou, mAcc=miou,
                IoU={'a': miou + 10, 'b': None}, Acc={'a': miou, 'b': None})


def _hand_made_result(model='m', clean=60.0):
    cells = [_cell('clean', 0, clean), _cell('blur', 1, 50.0), _cell('blur', 2, 40.0),
             _cell('noise', 1, 30.0), _cell('noise', 2, 20.0)]
    return rob.make_result(model, dict(config='c.py', checkpoint='k.pth', cfg_options={}), cells)


def test_summary_mpc_rpc_on_hand_made_results():
    summary = _hand_made_result()['summary']
    assert summary['clean_mIoU'] == 60.0
    assert summary['mPC'] == pytest.approx((50 + 40 + 30 + 20) / 4)
    assert summary['rPC'] == pytest.approx(35 / 60)
    assert summary['family_mIoU'] == {'blur': 45.0, 'noise': 25.0}
    assert _hand_made_result(clean=0.0)['summary']['rPC'] is None
    with pytest.raises(ValueError, match='exactly one clean cell'):
        rob.summarize([_cell('blur', 1, 50.0)])


def test_markdown_table_holds_every_cell_and_summary():
    table = rob.format_table(_hand_made_result())
    assert '| family | clean | s1 | s2 | mean |' in table
    assert '| blur | 60.00 | 50.00 | 40.00 | 45.00 |' in table
    assert '| noise | 60.00 | 30.00 | 20.00 | 25.00 |' in table
    assert 'mPC **35.00**' in table and 'rPC **58.3 %**' in table
    # per-class: a is 70 clean and 45 on average degraded; b is absent everywhere
    assert '| a | 70.00 | 45.00 | 25.00 |' in table and '| b | – | – | – |' in table


def _pipeline(load='LoadImage'):
    return [dict(type=load), dict(type='Resize', scale=(64, 32)), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')]


@pytest.mark.parametrize('load', ['LoadImage', 'LoadImageFromFile', 'mmseg.LoadImageFromFile'])
def test_degrade_inserted_right_after_loading(load):
    dataset = dict(type='X', pipeline=_pipeline(load))
    assert rob.insert_degradation(dataset, 'jpeg', 3) == 1
    assert dataset['pipeline'][1] == dict(type='Degrade', preset='jpeg', severity=3,
                                          deterministic=True)
    assert [t['type'] for t in dataset['pipeline']][2:] == ['Resize', 'LoadAnnotations',
                                                            'PackSegInputs']


def test_degrade_inserted_in_wrapped_datasets():
    dataset = dict(type='ConcatDataset', datasets=[
        dict(type='X', pipeline=_pipeline()),
        dict(type='RepeatDataset', times=2, dataset=dict(type='Y', pipeline=_pipeline()))])
    assert rob.insert_degradation(dataset, 'blur', 1) == 2
    assert dataset['datasets'][0]['pipeline'][1]['type'] == 'Degrade'
    assert dataset['datasets'][1]['dataset']['pipeline'][1]['type'] == 'Degrade'
    # a wrapper's own pipeline that loads nothing is left alone
    mix = dict(type='MultiImageMixDataset', pipeline=[dict(type='PackSegInputs')],
               dataset=dict(type='X', pipeline=_pipeline()))
    assert rob.insert_degradation(mix, 'noise', 2) == 1
    assert len(mix['pipeline']) == 1


def _write_config(tmp_path, pipeline, evaluator=None):
    path = tmp_path / 'model_cfg.py'
    path.write_text(
        f'test_dataloader = dict(dataset=dict(type="X", pipeline={pipeline!r}))\n'
        f'test_evaluator = {evaluator or dict(type="IoUMetric", iou_metrics=["mIoU"])!r}\n'
        'test_cfg = dict(type="TestLoop")\n')
    return str(path)


def test_cell_config(tmp_path):
    cfg = rob.load_config(_write_config(tmp_path, _pipeline()))
    clean = rob.build_cell_config(cfg, 'clean', 0, 'k.pth', str(tmp_path))
    noisy = rob.build_cell_config(cfg, 'noise', 4, 'k.pth', str(tmp_path))
    assert [t['type'] for t in clean.test_dataloader.dataset.pipeline] == [
        t['type'] for t in _pipeline()]
    assert noisy.test_dataloader.dataset.pipeline[1]['severity'] == 4
    assert len(cfg.test_dataloader.dataset.pipeline) == 4  # the model's config is untouched
    assert noisy.test_evaluator == dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
    assert noisy.load_from == 'k.pth' and noisy.work_dir.endswith('logs/noise_s4')
    # bad test pipelines fail when the config is loaded, before any cell runs
    with pytest.raises(ValueError, match='no LoadImage or LoadImageFromFile'):
        rob.load_config(_write_config(tmp_path, [dict(type='PackSegInputs')]))
    with pytest.raises(ValueError, match='keep_hq=True.*pass a segmentation config'):
        pipeline = _pipeline()
        pipeline.insert(1, dict(type='Degrade', preset='rass_x1', keep_hq=True))
        rob.load_config(_write_config(tmp_path, pipeline))


def test_config_own_degradation_replaced(tmp_path, capsys):
    """An LQ config's fixed test degradation is removed: clean is clean, cells get their own."""
    pipeline = _pipeline()
    pipeline.insert(1, dict(type='Degrade', preset='rass_x1', deterministic=True))
    cfg = rob.load_config(_write_config(tmp_path, pipeline))
    assert "removed {'type': 'Degrade', 'preset': 'rass_x1'" in capsys.readouterr().out
    clean = rob.build_cell_config(cfg, 'clean', 0, 'k.pth', str(tmp_path))
    blur = rob.build_cell_config(cfg, 'blur', 2, 'k.pth', str(tmp_path))
    assert [t['type'] for t in clean.test_dataloader.dataset.pipeline] == [
        t['type'] for t in _pipeline()]
    degrades = [t for t in blur.test_dataloader.dataset.pipeline if t['type'] == 'Degrade']
    assert degrades == [dict(type='Degrade', preset='blur', severity=2, deterministic=True)]
    with pytest.raises(ValueError, match='has no IoUMetric'):
        rob.build_cell_config(
            rob.load_config(_write_config(tmp_path, _pipeline(), dict(type='CityscapesMetric'))),
            'clean', 0, 'k.pth', str(tmp_path))


def test_check_request_errors(tmp_path):
    config, ckpt = tmp_path / 'c.py', tmp_path / 'k.pth'
    config.write_text('')
    ckpt.write_bytes(b'')
    config, ckpt = str(config), str(ckpt)
    rob.check_request(config, ckpt, ['blur', 'mixed'], [1, 5])
    with pytest.raises(FileNotFoundError, match='config file .*nope.py does not exist'):
        rob.check_request(str(tmp_path / 'nope.py'), ckpt, ['blur'], [1])
    with pytest.raises(FileNotFoundError, match='checkpoint .*nope.pth does not exist'):
        rob.check_request(config, str(tmp_path / 'nope.pth'), ['blur'], [1])
    with pytest.raises(ValueError, match="unknown degradation family 'fog'"):
        rob.check_request(config, ckpt, ['blur', 'fog'], [1])
    for bad in (0, 6):
        with pytest.raises(ValueError, match=f'severity {bad} is out of range'):
            rob.check_request(config, ckpt, ['blur'], [1, bad])


def test_resume_skips_finished_cells(tmp_path, monkeypatch, capsys):
    """A second run with one more severity evaluates only the new cell."""
    config = _write_config(tmp_path, _pipeline())
    ckpt = tmp_path / 'k.pth'
    ckpt.write_bytes(b'')
    evaluated = []

    def fake_evaluate(cell_cfg):
        step = cell_cfg.test_dataloader.dataset.pipeline[1]
        severity = step.get('severity', 0) if step['type'] == 'Degrade' else 0
        evaluated.append(rob.cell_name(step.get('preset', 'clean'), severity))
        miou = 50.0 - 10 * severity
        return dict(aAcc=80.0, mIoU=miou, mAcc=miou, IoU={'a': miou, 'b': None},
                    Acc={'a': miou, 'b': None})

    monkeypatch.setattr(rob, 'evaluate_cell', fake_evaluate)
    work_dir = str(tmp_path / 'wd')
    rob.run_benchmark(config, str(ckpt), ['blur'], [1], work_dir)
    assert evaluated == ['clean', 'blur_s1']
    capsys.readouterr()
    result = rob.run_benchmark(config, str(ckpt), ['blur'], [1, 2], work_dir)
    out = capsys.readouterr().out
    assert evaluated == ['clean', 'blur_s1', 'blur_s2']
    assert '[1/3] clean: cached' in out and '[2/3] blur severity 1: cached' in out
    assert '[3/3] blur severity 2: evaluating' in out
    assert result['summary']['mPC'] == pytest.approx(35.0)
    assert result['summary']['rPC'] == pytest.approx(0.7)
    assert json.loads((tmp_path / 'wd' / 'robustness.json').read_text()) == result
    assert (tmp_path / 'wd' / 'robustness.md').read_text() == rob.format_table(result)
    assert (tmp_path / 'wd' / 'robustness.png').read_bytes()[:4] == b'\x89PNG'

    # a truncated cell file (killed while writing) is evaluated again
    (tmp_path / 'wd' / 'cells' / 'blur_s2.json').write_text('{"fam')
    rob.run_benchmark(config, str(ckpt), ['blur'], [1, 2], work_dir)
    assert evaluated[-1] == 'blur_s2' and len(evaluated) == 4
    # cells of another checkpoint are never mixed in
    other = tmp_path / 'other.pth'
    other.write_bytes(b'')
    with pytest.raises(ValueError, match='holds a result of another run'):
        rob.run_benchmark(config, str(other), ['blur'], [1], work_dir)


def test_compare_writes_side_by_side_table_and_plot(tmp_path):
    paths = []
    for name, clean in (('fast', 60.0), ('robust', 50.0)):
        path = tmp_path / f'{name}.json'
        path.write_text(json.dumps(_hand_made_result(name, clean)))
        paths.append(str(path))
    md, png = rob.compare(paths, str(tmp_path / 'cmp'))
    table = open(md).read()
    assert '| | fast | robust |' in table
    assert '| clean mIoU | 60.00 | 50.00 |' in table
    assert '| blur (mean) | 45.00 | 45.00 |' in table
    assert '| **rPC** | **58.3 %** | **70.0 %** |' in table
    assert open(png, 'rb').read(4) == b'\x89PNG'
    assert 'not comparable' not in table
    md, _ = rob.compare(paths, str(tmp_path / 'cmp'), names=['A', 'B'])
    assert '| | A | B |' in open(md).read()
    subset = _hand_made_result('subset')
    subset['cells'] = subset['cells'][:3]
    (tmp_path / 'subset.json').write_text(json.dumps(subset))
    md, _ = rob.compare([paths[0], str(tmp_path / 'subset.json')], str(tmp_path / 'cmp'))
    assert 'different families / severities; their mPC and rPC are not comparable' in \
        open(md).read()
    with pytest.raises(ValueError, match='1 names given for 2 result files'):
        rob.compare(paths, str(tmp_path / 'cmp'), names=['A'])
    with pytest.raises(FileNotFoundError, match='result file .*missing.json does not exist'):
        rob.compare([str(tmp_path / 'missing.json')], str(tmp_path / 'cmp'))
    (tmp_path / 'foreign.json').write_text('{"mIoU": 1}')
    with pytest.raises(ValueError, match='is not a robustness result'):
        rob.compare([str(tmp_path / 'foreign.json')], str(tmp_path / 'cmp'))


def test_model_zoo_config_as_it_is(tmp_path):
    """mmseg's SegFormer Cityscapes config, named with ``mmseg::``, gets Degrade after loading."""
    name = 'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'
    cfg = rob.load_config(name)
    cell = rob.build_cell_config(cfg, 'mixed', 5, 'k.pth', str(tmp_path))
    pipeline = cell.test_dataloader.dataset.pipeline
    assert [t['type'] for t in pipeline[:2]] == ['LoadImageFromFile', 'Degrade']
    assert pipeline[1]['preset'] == 'mixed' and pipeline[1]['deterministic'] is True
    assert cell.test_evaluator['type'] == 'PerClassIoUMetric'
    with pytest.raises(FileNotFoundError, match='config file .*segformer/nope.py does not exist'):
        rob.check_request('mmseg::segformer/nope.py', 'http://x/k.pth', ['blur'], [1])
