# The degraded demo data (demo_cityscapes_lq.py) with cached SAM priors, for the CPU demos
# (2 images per batch, no loader workers). Training loads the priors (LoadSAMPriors right after
# LoadImage + Degrade, masks packed with the images); `sam_test_pipeline` is the evaluation
# pipeline with priors, for methods that need SAM at test time (SPT). Make the priors with
#   python tools/extract_sam_priors.py CONFIG --split train --stand-in --out <sam_prior_dir>
# (and --split val for SPT); see docs/sam_priors.md.
_base_ = ['./demo_cityscapes_lq.py']
sam_prior_dir = 'data/demo_cityscapes/sam_priors/rass_x1_stand_in'


def with_sam_priors(pipeline):
    """The pipeline with LoadSAMPriors after Degrade and the masks packed."""
    out = []
    for step in pipeline:
        if step['type'] == 'PackSegInputs':
            step = dict(step, type='PackSegInputsWithSAMPriors')
        out.append(step)
        if step['type'] == 'Degrade':
            out.append(dict(type='LoadSAMPriors', prior_dir=sam_prior_dir))
    if not any(step['type'] == 'LoadSAMPriors' for step in out):
        raise ValueError('demo_cityscapes_lq_sam_priors.py: the base pipeline has no Degrade '
                         'step to load SAM priors after')
    return out


train_pipeline = with_sam_priors(_base_.train_pipeline)
# The evaluation pipeline with priors: the clean test pipeline with the evaluation set's
# deterministic Degrade after loading (what DegradedDataset inserts; it keeps this very step).
sam_test_pipeline = with_sam_priors(
    _base_.test_pipeline[:1] + [dict(_base_.degradation, deterministic=True)]
    + _base_.test_pipeline[1:])
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
