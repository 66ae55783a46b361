"""Robustness benchmark logic: selection, summary figures, config surgery, code digests,
reports and the leaderboard (hand-made results). The cell cache and strict checkpoint loading
it shares with the LQ protocol: tests/test_evaluation/test_cells.py."""
import json

import pytest

from mmseg_rass.evaluation import robustness as rob
from mmseg_rass.transforms.imagenet_c import CATEGORIES


def test_selection_by_name_category_and_group():
    assert rob.select_corruptions(['benchmark']) == [
        n for c in ('noise', 'blur', 'weather', 'digital') for n in CATEGORIES[c]]
    assert len(rob.select_corruptions(['benchmark'])) == 15
    assert len(rob.select_corruptions(['all'])) == 19
    assert rob.select_corruptions(['holdout']) == ['speckle_noise', 'gaussian_blur', 'spatter',
                                                    'saturate']
    assert rob.select_corruptions(['realesrgan']) == [
        'realesrgan_blur', 'realesrgan_noise', 'realesrgan_jpeg', 'realesrgan_downsample',
        'realesrgan_mixed']
    # names and categories mix, without repeats, in the order given
    assert rob.select_corruptions(['fog', 'weather', 'realesrgan_jpeg']) == [
        'fog', 'snow', 'frost', 'brightness', 'realesrgan_jpeg']
    assert rob.corruption_transform('fog', 3) == dict(type='Corrupt', corruption='fog',
                                                      severity=3)
    assert rob.corruption_transform('realesrgan_downsample', 2) == dict(
        type='Degrade', preset='downsample', severity=2, deterministic=True)
    assert rob.corruption_transform('clean', 0) is None
    with pytest.raises(rob.BenchmarkError, match="'jpeg' is now named 'realesrgan_jpeg'.*"
                       "jpeg_compression"):
        rob.select_corruptions(['jpeg'])
    with pytest.raises(rob.BenchmarkError, match="'mixed' is now named 'realesrgan_mixed'"):
        rob.select_corruptions(['mixed'])
    with pytest.raises(rob.BenchmarkError, match="unknown corruption 'rain'"):
        rob.select_corruptions(['rain'])


def _cell(corruption, severity, miou):
    return dict(corruption=corruption, category=rob.CATEGORY_OF.get(corruption, 'clean'),
                severity=severity, aAcc=90.0, mIoU=miou, mAcc=miou,
                IoU={'a': miou + 10, 'b': None}, Acc={'a': miou, 'b': None})


def _hand_made_result(model='m', clean=60.0, shift=0.0):
    cells = [_cell('clean', 0, clean),
             _cell('gaussian_noise', 1, 50.0 + shift), _cell('gaussian_noise', 2, 40.0 + shift),
             _cell('shot_noise', 1, 30.0 + shift), _cell('shot_noise', 2, 20.0 + shift),
             _cell('fog', 1, 44.0 + shift), _cell('fog', 2, 42.0 + shift)]
    return rob.make_result(model, dict(config='c.py', checkpoint='k.pth'), cells)


def test_summary_on_hand_made_results():
    summary = _hand_made_result()['summary']
    assert summary['clean_mIoU'] == 60.0
    assert summary['mPC'] == pytest.approx((50 + 40 + 30 + 20 + 44 + 42) / 6)
    assert summary['rPC'] == pytest.approx(summary['mPC'] / 60)
    assert summary['category_mPC'] == {'noise': 35.0, 'weather': 43.0}
    assert summary['corruption_mPC'] == {'gaussian_noise': 45.0, 'shot_noise': 25.0,
                                         'fog': 43.0}
    assert _hand_made_result(clean=0.0)['summary']['rPC'] is None
    with pytest.raises(ValueError, match='exactly one clean cell'):
        rob.summarize([_cell('fog', 1, 50.0)])


def test_markdown_table_holds_every_cell_and_summary():
    table = rob.format_table(_hand_made_result())
    assert '| category | corruption | s1 | s2 | mean |' in table
    assert '| noise | gaussian_noise | 50.00 | 40.00 | 45.00 |' in table
    assert '| **noise** | **mean** | 40.00 | 30.00 | **35.00** |' in table
    assert '| weather | fog | 44.00 | 42.00 | 43.00 |' in table
    assert 'mPC **37.67**' in table and 'rPC **62.8 %**' in table
    # per-class: a is 70 clean and 47.67 on average corrupted; b is absent everywhere
    assert '| a | 70.00 | 47.67 | 22.33 |' in table and '| b | – | – | – |' in table


def _write_results(tmp_path):
    paths = []
    for name, clean, shift in (('fast', 60.0, 0.0), ('robust', 50.0, 5.0)):
        path = tmp_path / f'{name}.json'
        path.write_text(json.dumps(_hand_made_result(name, clean, shift)))
        paths.append(str(path))
    return paths


def test_leaderboard_from_hand_made_results(tmp_path):
    paths = _write_results(tmp_path)
    md, png = rob.compare(paths, str(tmp_path / 'cmp'))
    table = open(md).read()
    assert '| model | clean mIoU | mPC | rPC | noise | weather |' in table
    # best mPC first: robust (42.67) above fast (37.67)
    assert table.index('| robust |') < table.index('| fast |')
    assert '| robust | 50.00 | **42.67** | 85.3 % | 40.00 | 48.00 |' in table
    assert '| fast | 60.00 | **37.67** | 62.8 % | 35.00 | 43.00 |' in table
    assert open(png, 'rb').read(4) == b'\x89PNG'
    assert 'not comparable' not in table
    md, _ = rob.compare(paths, str(tmp_path / 'cmp'), names=['A', 'B'])
    assert '| B | 50.00 |' in open(md).read()
    subset = _hand_made_result('subset')
    subset['cells'] = subset['cells'][:3]
    (tmp_path / 'subset.json').write_text(json.dumps(subset))
    md, _ = rob.compare([paths[0], str(tmp_path / 'subset.json')], str(tmp_path / 'cmp'))
    assert 'not comparable' in open(md).read()
    with pytest.raises(rob.BenchmarkError, match='1 names given for 2 result files'):
        rob.compare(paths, str(tmp_path / 'cmp'), names=['A'])
    with pytest.raises(rob.BenchmarkError, match='result file .*missing.json does not exist'):
        rob.compare([str(tmp_path / 'missing.json')], str(tmp_path / 'cmp'))
    (tmp_path / 'foreign.json').write_text('{"mIoU": 1}')
    with pytest.raises(rob.BenchmarkError, match='is not a result of tools/benchmark_robustness.py'):
        rob.compare([str(tmp_path / 'foreign.json')], str(tmp_path / 'cmp'))


def test_figures_are_not_clipped():
    """Long model names and titles stay inside the figure (legends outside the panels)."""
    long = [_hand_made_result('a_very_long_model_name_' * 4 + str(i), 60.0 - i, -i)
            for i in range(5)]
    fig = rob.compare_figure(long, [r['model'] for r in long])
    assert rob.figure_overflow(fig) == []
    assert fig.legends and len(fig.legends[0].get_texts()) == 5
    fig = rob.result_figure(long[0])
    assert rob.figure_overflow(fig) == []
    # the check itself: a title far wider than the figure is reported
    fig.axes[0].set_title('x' * 400)
    assert fig.axes[0].title in rob.figure_overflow(fig)


def _pipeline(load='LoadImage'):
    return [dict(type=load), dict(type='Resize', scale=(64, 32)), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')]


@pytest.mark.parametrize('load', ['LoadImage', 'LoadImageFromFile', 'mmseg.LoadImageFromFile'])
def test_transform_inserted_right_after_loading(load):
    dataset = dict(type='X', pipeline=_pipeline(load))
    assert rob.insert_transform(dataset, rob.corruption_transform('fog', 3)) == 1
    assert dataset['pipeline'][1] == dict(type='Corrupt', corruption='fog', severity=3)
    assert [t['type'] for t in dataset['pipeline']][2:] == ['Resize', 'LoadAnnotations',
                                                            'PackSegInputs']


def test_transform_inserted_in_wrapped_datasets():
    dataset = dict(type='ConcatDataset', datasets=[
        dict(type='X', pipeline=_pipeline()),
        dict(type='RepeatDataset', times=2, dataset=dict(type='Y', pipeline=_pipeline()))])
    step = rob.corruption_transform('realesrgan_blur', 1)
    assert rob.insert_transform(dataset, step) == 2
    assert dataset['datasets'][0]['pipeline'][1]['type'] == 'Degrade'
    assert dataset['datasets'][1]['dataset']['pipeline'][1]['type'] == 'Degrade'
    # a wrapper's own pipeline that loads nothing is left alone
    mix = dict(type='MultiImageMixDataset', pipeline=[dict(type='PackSegInputs')],
               dataset=dict(type='X', pipeline=_pipeline()))
    assert rob.insert_transform(mix, step) == 1
    assert len(mix['pipeline']) == 1


def _write_config(tmp_path, pipeline, evaluator=None):
    path = tmp_path / 'model_cfg.py'
    path.write_text(
        'model = dict(type="EncoderDecoder")\n'
        f'test_dataloader = dict(dataset=dict(type="X", pipeline={pipeline!r}))\n'
        f'test_evaluator = {evaluator or dict(type="IoUMetric", iou_metrics=["mIoU"])!r}\n'
        'test_cfg = dict(type="TestLoop")\n')
    return str(path)


def test_load_config_cleans_the_test_part(tmp_path):
    pipeline = _pipeline()
    pipeline.insert(1, dict(type='Degrade', preset='rass_x1', deterministic=True))
    cfg, notes = rob.load_config(_write_config(tmp_path, pipeline))
    assert [t['type'] for t in cfg.test_dataloader.dataset.pipeline] == [
        t['type'] for t in _pipeline()]
    assert len(notes) == 1 and "removed {'type': 'Degrade', 'preset': 'rass_x1'" in notes[0]
    assert cfg.test_evaluator == dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
    with pytest.raises(rob.BenchmarkError, match='no LoadImage or LoadImageFromFile'):
        rob.load_config(_write_config(tmp_path, [dict(type='PackSegInputs')]))
    with pytest.raises(rob.BenchmarkError, match='keep_hq=True.*pass a segmentation config'):
        pipeline = _pipeline()
        pipeline.insert(1, dict(type='Degrade', preset='rass_x1', keep_hq=True))
        rob.load_config(_write_config(tmp_path, pipeline))
    with pytest.raises(rob.BenchmarkError, match='has no IoUMetric'):
        rob.load_config(_write_config(tmp_path, _pipeline(), dict(type='CityscapesMetric')))
    (tmp_path / 'broken.py').write_text('model = dict(\n')
    with pytest.raises(rob.BenchmarkError, match='config .*broken.py cannot be loaded'):
        rob.load_config(str(tmp_path / 'broken.py'))


def test_check_request_errors(tmp_path):
    config, ckpt = tmp_path / 'c.py', tmp_path / 'k.pth'
    config.write_text('')
    ckpt.write_bytes(b'')
    config, ckpt = str(config), str(ckpt)
    assert rob.check_request(config, ckpt, ['noise', 'fog'], [5, 1, 5]) == (
        ['gaussian_noise', 'shot_noise', 'impulse_noise', 'fog'], [1, 5])
    with pytest.raises(rob.BenchmarkError, match='config file .*nope.py does not exist'):
        rob.check_request(str(tmp_path / 'nope.py'), ckpt, ['fog'], [1])
    with pytest.raises(rob.BenchmarkError, match='checkpoint .*nope.pth does not exist'):
        rob.check_request(config, str(tmp_path / 'nope.pth'), ['fog'], [1])
    for bad in (0, 6):
        with pytest.raises(rob.BenchmarkError, match=f'severity {bad} is out of range'):
            rob.check_request(config, ckpt, ['fog'], [1, bad])


def test_transform_code_digest_per_implementation():
    assert rob.transform_code_digest(None) is None
    assert len({rob.transform_code_digest(rob.corruption_transform(n, 1))
                for n in ('fog', 'snow', 'realesrgan_jpeg')}) == 2  # per implementation


def test_model_zoo_config_as_it_is(tmp_path, cached_mmseg_model_index):
    """mmseg's SegFormer Cityscapes config, named with ``mmseg::``, gets Corrupt after loading."""
    name = 'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'
    cfg, notes = rob.load_config(name)
    assert notes == [] and cfg.test_evaluator['type'] == 'PerClassIoUMetric'
    dataset = cfg.test_dataloader.dataset
    rob.insert_transform(dataset, rob.corruption_transform('snow', 5))
    assert [t['type'] for t in dataset.pipeline[:2]] == ['LoadImageFromFile', 'Corrupt']
    with pytest.raises(rob.BenchmarkError, match='config file .*segformer/nope.py does not '
                       'exist'):
        rob.check_request('mmseg::segformer/nope.py', 'http://x/k.pth', ['fog'], [1])
