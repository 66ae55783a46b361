"""configs/spt and configs/spd: paper hyper-parameters, priors where they belong, no repeats."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

pytestmark = pytest.mark.usefixtures('cached_mmseg_model_index')

SPD = sorted(glob.glob(osp.join(osp.dirname(__file__), '../../configs/spd/*.py')))
SPT = sorted(glob.glob(osp.join(osp.dirname(__file__), '../../configs/spt/spt_*.py')))


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
