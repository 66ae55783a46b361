"""tools/check_zoo_mixing.py on a representative subset of real mmseg model-zoo configs: the
configs tools/mix_config.py writes train a step (every family builds: test_mix_config.py).

The whole sweep (13 families x RASS, SPT, SPD) runs in the tool; its tables are in docs/rass.md
and docs/sam_priors.md. Here: ``pretrained=`` + one level at stride 8 (PSPNet); layer decay
(BEiT's LayerDecayOptimizerConstructor, with its ``pretrained=`` and its neck dropped); SPT and
SPD on SegFormer (whose paramwise custom keys meet a frozen model). ConvNeXt's stage-wise
recipe is checked on the constructor in tests/test_models/test_backbones/test_rass_mixing.py.
"""

import pytest


@pytest.fixture(scope='module')
def tool(tool_loader):
    return tool_loader('check_zoo_mixing')


@pytest.fixture(scope='module')
def rass_rows(tool, one_torch_thread):
    rows = tool.run(['rass'], ['pspnet', 'beit'])
    return {r['family']: r for r in rows}


def test_rass_mixes_into_zoo_configs_and_trains_a_step(rass_rows):
    for name, row in rass_rows.items():
        assert 'error' not in row, f'{name}: {row.get("error")}'
        assert row['optim_warnings'] == 0 and row['constructor'] == 'RASSOptimWrapperConstructor'
        assert row['loss'] > 0 and row['trainable'] > 0


def test_single_level_heads_read_the_chosen_stride(rass_rows):
    assert rass_rows['pspnet']['levels'] == 'PSPHead s8, FCNHead s8'
    assert rass_rows['beit']['levels'] == 'UPerHead s4/8/16/32, FCNHead s16'


def test_layer_decay_recipes_of_the_zoo_apply_to_the_rass_blocks(rass_rows):
    # decay 0.9 over 10 blocks: conv_in x0.9^10 = 0.349 ... last up block x0.9; projections x1
    assert rass_rows['beit']['backbone_lr'] == 'x0.349..x1'
    assert rass_rows['pspnet']['backbone_lr'] == 'x1'


def test_edit_text_and_errors(tool, capsys):
    text = tool.config_text('rass', tool.FAMILY_BY_NAME['pspnet'])
    assert "\n_base_ = 'mmseg::pspnet/pspnet_r50-d8_" in text
    assert 'out_strides=(8, 8, 8, 8)' in text
    assert "optim_wrapper = dict(constructor='RASSOptimWrapperConstructor')" in text
    with pytest.raises(KeyError, match='has no spt check'):
        tool.config_text('spt', tool.FAMILY_BY_NAME['ocrnet'])
    assert not tool.has_check('spt', tool.FAMILY_BY_NAME['ocrnet'])
    for argv, message in ((['spt', 'ocrnet'], '--show-edit: ocrnet has no spt check'),
                          (['rass', 'nope'], '--show-edit: choose METHOD from rass, spt, spd')):
        with pytest.raises(SystemExit) as exit_info:  # argparse's usage error, nothing mixed
            tool.main(['--show-edit', *argv])
        assert exit_info.value.code == 2
        assert f': error: {message}' in capsys.readouterr().err.splitlines()[-1]


def test_spt_and_spd_on_a_zoo_model(tool, one_torch_thread):
    rows = tool.run(['spt', 'spd'], ['segformer'])
    assert len(rows) == 2
    for row in rows:
        assert 'error' not in row, f'{row["method"]}: {row.get("error")}'
        assert row['optim_warnings'] == 0
    spt, spd = rows
    assert spt['backbone_lr'] == 'frozen' and spd['backbone_lr'] == 'zoo'
