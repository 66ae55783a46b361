"""End to end through tools/train.py and tools/test.py (mmseg's own scripts behind compat)."""
import pytest

CONFIG = 'configs/baseline/fpn_r18_demo_cityscapes.py'


def demo_options(data_root, max_iters):
    """--cfg-options that make the baseline config tiny and point it at ``data_root``."""
    opts = [f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={max_iters}',
            'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=2', 'crop_size=(64,64)', 'model.data_preprocessor.size=(64,64)']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={data_root}',
                 f'{split}_dataloader.num_workers=0', f'{split}_dataloader.persistent_workers=False']
    return ['--cfg-options', *opts]


@pytest.fixture(scope='module')
def trained(tmp_path_factory, demo_data_root, tool_runner):
    work_dir = tmp_path_factory.mktemp('baseline')
    proc = tool_runner(['tools/train.py', CONFIG, '--work-dir', str(work_dir),
                        *demo_options(demo_data_root, 4)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work_dir, proc.stdout + proc.stderr


def test_train_writes_checkpoint_and_validates(trained):
    work_dir, log = trained
    assert (work_dir / 'iter_4.pth').is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')
    assert 'mIoU' in log and 'Iter(train) [4/4]' in log


def test_resume_continues_from_last_checkpoint(trained, demo_data_root, tool_runner):
    work_dir, _ = trained
    proc = tool_runner(['tools/train.py', CONFIG, '--work-dir', str(work_dir), '--resume',
                        *demo_options(demo_data_root, 6)])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'Iter(train) [5/6]' in log and 'Iter(train) [1/6]' not in log
    assert (work_dir / 'iter_6.pth').is_file()


def test_test_script_prints_miou(trained, demo_data_root, tool_runner):
    work_dir, _ = trained
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    proc = tool_runner(['tools/test.py', CONFIG, checkpoint,
                        '--work-dir', str(work_dir / 'test'), *demo_options(demo_data_root, 4)])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Load checkpoint from' in log and 'mIoU' in log


def test_missing_checkpoint_is_one_clear_error(tmp_path, tool_runner):
    proc = tool_runner(['tools/test.py', CONFIG, str(tmp_path / 'none.pth')])
    assert proc.returncode != 0
    assert f'checkpoint file {tmp_path / "none.pth"} does not exist' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_missing_data_root_says_how_to_generate(tmp_path, tool_runner):
    proc = tool_runner(['tools/train.py', CONFIG, '--work-dir', str(tmp_path),
                        *demo_options(tmp_path / 'no_data', 2)])
    assert proc.returncode != 0
    assert 'make_demo_data.py' in proc.stderr and str(tmp_path / 'no_data') in proc.stderr


def test_only_leading_positionals_are_checked_as_files(tmp_path):
    from mmseg_rass.tools_entry import _check_config_arg
    config = tmp_path / 'cfg.py'
    config.write_text('')
    # an option's value is not mistaken for the config or checkpoint
    _check_config_arg('train.py', [str(config), '--work-dir', str(tmp_path / 'new_dir')])
    _check_config_arg('test.py', ['--work-dir', str(tmp_path / 'new_dir')])
    with pytest.raises(SystemExit, match='checkpoint file .*none.pth does not exist'):
        _check_config_arg('test.py', [str(config), str(tmp_path / 'none.pth'), '--show'])
