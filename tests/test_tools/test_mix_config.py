"""tools/mix_config.py: the config it writes for every model-zoo family of the zoo check builds
(the CI subset of tests/test_tools/test_check_zoo_mixing.py trains a step of some); the
derived edits; one-line errors."""
import re
import warnings

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_rass.mixing import MixError, mix_config, rass_out_strides

OCRNET = 'mmseg::ocrnet/ocrnet_hr18_4xb2-40k_cityscapes-512x1024.py'


@pytest.fixture(scope='module')
def check_tool(tool_loader):
    return tool_loader('check_zoo_mixing')


def _cases(tool):
    return [(m, f) for f in tool.FAMILIES for m in tool.METHODS
            if m == 'rass' or getattr(f, m)]


def test_out_strides_rule():
    # every level read: the replaced backbone's strides
    assert rass_out_strides([4, 8, 16, 32], None) == (4, 8, 16, 32)
    # dilated ResNet read at levels 2, 3 (PSPNet): the unread s4 level takes s8
    assert rass_out_strides([4, 8, 8, 8], {2, 3}) == (8, 8, 8, 8)
    # DeepLabV3+ reads 0 (c1), 2, 3: level 1 keeps s8, which is read
    assert rass_out_strides([4, 8, 8, 8], {0, 2, 3}) == (4, 8, 8, 8)
    # SegNeXt reads 1, 2, 3: level 0 takes its nearest read level's s8
    assert rass_out_strides([4, 8, 16, 32], {1, 2, 3}) == (8, 8, 16, 32)
    # a tie goes to the finer level
    assert rass_out_strides([4, 8, 16, 32], {0, 2}) == (4, 4, 16, 16)


def test_written_config_builds_for_every_family(check_tool, tmp_path, cached_mmseg_model_index,
                                                one_torch_thread):
    init_default_scope('mmseg')
    for method, family in _cases(check_tool):
        path = tmp_path / f'{method}_{family.name}.py'
        path.write_text(check_tool.config_text(method, family))
        cfg = Config.fromfile(str(path))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = MODELS.build(cfg.model)
        if method == 'rass':
            assert type(model.backbone).__name__ == 'RASSBackbone', family.name
            assert cfg.optim_wrapper.constructor == 'RASSOptimWrapperConstructor'
            assert cfg.model.data_preprocessor.mean == [127.5] * 3
        else:
            assert type(model).__name__ == {'spt': 'SAMPriorEncoderDecoder',
                                            'spd': 'SAMDistillEncoderDecoder'}[method]


def test_the_command_on_the_issues_example(tool_loader, tmp_path, capsys,
                                           cached_mmseg_model_index):
    out = tmp_path / 'my_config.py'
    tool = tool_loader('mix_config')
    tool.main([OCRNET, '--method', 'rass', '-o', str(out)])
    assert 'decode_head list restated (FCNHead, OCRHead)' in capsys.readouterr().out
    text = out.read_text()
    assert f"_base_ = '{OCRNET}'" in text
    assert "pretrained_model_path='checkpoints/stable-diffusion-2-1-base'" in text
    cfg = Config.fromfile(str(out))
    heads = cfg.model.decode_head
    assert [h.type for h in heads] == ['FCNHead', 'OCRHead']
    assert [h.in_channels for h in heads] == [[512] * 4] * 2
    assert heads[1].ocr_channels == 256 and heads[0].loss_decode.loss_weight == 0.4
    assert cfg.train_cfg.max_iters == 40000  # the rest is the zoo config's
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    assert cfg.custom_imports.imports == ['mmseg_rass']
    with pytest.raises(SystemExit) as exit_info:
        tool.main([OCRNET, '-o', str(out)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith(  # after the program's name
        f': error: {out} exists: pass --force to overwrite it\n')


def test_a_project_config_and_the_derived_edits(tmp_path, repo_root,
                                                cached_mmseg_model_index):
    (tmp_path / 'sub').mkdir()
    mixed = mix_config(f'{repo_root}/configs/baseline/fpn_r18_demo_cityscapes.py', 'rass',
                       arch='tiny', out_channels=64, out_dir=str(tmp_path / 'sub'))
    assert mixed.notes == ['FPN neck in_channels']
    (tmp_path / 'sub' / 'mixed.py').write_text(mixed.text)
    cfg = Config.fromfile(str(tmp_path / 'sub' / 'mixed.py'))  # _base_ relative to the file
    assert cfg.model.neck.in_channels == [64] * 4 and cfg.model.neck.out_channels == 128
    assert cfg.train_dataloader.dataset.type == 'DemoCityscapesDataset'
    convnext = 'mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'
    with pytest.raises(MixError, match=r'mmpretrain.ConvNeXt .* cannot be built .*'
                       r'--backbone-strides 4 8 16 32'):
        mix_config(convnext, 'rass')
    mixed = mix_config(convnext, 'rass', backbone_strides=[4, 8, 16, 32])
    assert mixed.notes == ['custom_imports drops mmpretrain.models', 'aux head']
    assert "custom_imports = dict(imports=['mmseg_rass']" in mixed.text
    beit = mix_config('mmseg::beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py', 'rass')
    assert beit.notes == ['neck=None (Feature2Pyramid)', 'aux head']


@pytest.mark.parametrize('argv, message', [
    (['mmseg::nope/nope.py'], r'config .*nope/nope.py does not exist'),
    (['mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py', '--method', 'spt'],
     r'SPT units take the neck slot, and this config has a neck \(FPN\)'),
    ([OCRNET, '--method', 'spd'], r'SPD replaces the segmentor type EncoderDecoder, and the '
     r'model of .* is a CascadeEncoderDecoder'),
    (['configs/scr/scr_tiny_demo.py'], 'has no segmentor with a backbone and a decode head'),
])
def test_errors_are_one_line(argv, message, tool_loader, tmp_path, capsys,
                             cached_mmseg_model_index):
    with pytest.raises(SystemExit) as exit_info:
        tool_loader('mix_config').main(argv + ['-o', str(tmp_path / 'out.py')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / 'out.py').exists()
