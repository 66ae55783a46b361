"""configs/spt and configs/spd: paper hyper-parameters, priors where they belong, no repeats."""
import functools
import glob
import os.path as osp

import mmengine.config.utils
import pytest
from mmengine.config import Config

SPD = sorted(glob.glob(osp.join(osp.dirname(__file__), '../../configs/spd/*.py')))
SPT = sorted(glob.glob(osp.join(osp.dirname(__file__), '../../configs/spt/spt_*.py')))


@pytest.fixture(scope='module', autouse=True)
def cached_model_index():
    """mmengine re-reads all of mmseg's model-index YAML files for every ``mmseg::`` base
    (seconds each on a small CPU); the files do not change during the tests (read-only use)."""
    original = mmengine.config.utils.load
    mmengine.config.utils.load = functools.lru_cache(maxsize=None)(original)
    yield
    mmengine.config.utils.load = original


def _types(pipeline):
    return [step['type'] for step in pipeline]


@pytest.mark.parametrize('path', SPD, ids=osp.basename)
def test_spd_configs(path):
    cfg = Config.fromfile(path)
    hook, = cfg.custom_hooks
    teacher = hook.teacher
    assert teacher.type == ('SAMCascadeTeacher' if 'cascade' in path else 'SAMDistillTeacher')
    assert teacher.spd_loss.loss_weight == 0.005  # λ1, the SPD paper's Table 6
    assert teacher.sgr_loss.loss_weight == 200.  # λ2
    assert teacher.sgr_loss.relation == 'l2'  # Eq. 6
    assert hook.get('optim_wrapper') is None  # the teacher follows the run's optimization
    assert hook.get('save_teacher', True) and not hook.get('resume_without_teacher', False)
    train = _types(cfg.train_dataloader.dataset.pipeline)
    assert train[train.index('Degrade') + 1] == 'LoadSAMPriors'
    assert train[-1] == 'PackSegInputsWithSAMPriors'
    for split in ('val', 'test'):  # inference: the student alone, no priors
        steps = _types(cfg[f'{split}_dataloader'].dataset.pipeline)
        assert 'LoadSAMPriors' not in steps and steps[-1] == 'PackSegInputs'


@pytest.mark.parametrize('path', SPT, ids=osp.basename)
def test_spt_configs_load_priors_for_evaluation_too(path):
    cfg = Config.fromfile(path)
    for split in ('train', 'val', 'test'):
        steps = _types(cfg[f'{split}_dataloader'].dataset.pipeline)
        assert steps[steps.index('Degrade') + 1] == 'LoadSAMPriors'
        assert steps[-1] == 'PackSegInputsWithSAMPriors'


@pytest.mark.parametrize('path', SPD + SPT, ids=osp.basename)
def test_method_configs_state_only_their_difference(path):
    with open(path) as f:
        text = f.read()
    for repeated in ('RandomResize', 'RandomCrop', 'PhotoMetricDistortion', 'LoadAnnotations'):
        assert repeated not in text, f'{path} repeats the dataset pipeline ({repeated})'
