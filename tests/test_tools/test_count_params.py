"""tools/count_params.py: per-component trainable/total counts on the meta device."""
import os.path as osp

import pytest

from mmseg_rass.tools_entry import run_cli


@pytest.fixture(scope='module')
def tool(tool_loader):
    return tool_loader('count_params')


def test_rass_sd21_counts_without_weights(tool, repo_root, capsys):
    config = osp.join(repo_root, 'configs/rass/rass_cityscapes_lq.py')
    rows, (trainable, total) = tool.main([config])
    table = {name: (tr, tot) for name, tr, tot in rows}
    out = capsys.readouterr().out
    assert 'built-in SD2.1-base architecture used' in out and '| backbone |' in out
    lora_tr, lora_tot = table['backbone: LoRA (segmentation)']
    # rank 4 on the RASS code's targets, conv_in included (its LoRA: 4x4x3x3 + 320x4)
    assert lora_tr == lora_tot == 4_044_176
    assert table['backbone: UNet'][0] == 0 and abs(table['backbone: UNet'][1] - 865.899e6) < 1e3
    assert table['backbone: VAE encoder'][0] == 0
    assert table['backbone: conv_in'] == (11840, 11840)  # 4 -> 320, 3x3, + bias
    bb_tr, bb_tot = table['backbone']
    assert bb_tr == sum(table[f'backbone: {k}'][0] for k in
                        ('LoRA (segmentation)', 'conv_in', 'projections'))
    assert bb_tr / bb_tot <= 0.01
    assert table['decode_head'][0] == table['decode_head'][1] > 0
    assert trainable == bb_tr + table['decode_head'][0]


def test_any_config_and_clear_error(tool, repo_root):
    rows, (trainable, total) = tool.main(
        [osp.join(repo_root, 'configs/baseline/fpn_r18_demo_cityscapes.py')])
    assert {name for name, _, _ in rows} >= {'backbone', 'neck', 'decode_head'}
    assert trainable == total > 0
    with pytest.raises(SystemExit, match='^error: config file no/such/config.py does not exist$'):
        run_cli(tool.main, ['no/such/config.py'])
