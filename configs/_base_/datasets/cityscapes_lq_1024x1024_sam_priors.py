# Cityscapes-LQ (cityscapes_lq.py: RASS x1 degradation, random in training, seeded in evaluation)
# with SegFormer's 1024x1024 training crops and cached SAM priors (LoadSAMPriors right after
# LoadImage + Degrade, masks packed with the images) in training; `sam_test_pipeline` is the
# evaluation pipeline with priors, for methods that need SAM at test time (SPT). Priors:
#   python tools/extract_sam_priors.py CONFIG --split train --sam-checkpoint \
#       checkpoints/sam_vit_b_01ec64.pth --model-type vit_b --out <sam_prior_dir>
_base_ = ['./cityscapes_lq.py']
crop_size = (1024, 1024)
sam_prior_dir = 'data/cityscapes/sam_priors/rass_x1_vit_b'


def with_sam_priors(pipeline):
    """The pipeline with LoadSAMPriors after Degrade, the masks packed, 1024x1024 crops."""
    out = []
    for step in pipeline:
        if step['type'] == 'PackSegInputs':
            step = dict(step, type='PackSegInputsWithSAMPriors')
        elif step['type'] == 'RandomCrop':
            step = dict(step, crop_size=crop_size)
        out.append(step)
        if step['type'] == 'Degrade':
            out.append(dict(type='LoadSAMPriors', prior_dir=sam_prior_dir))
    if not any(step['type'] == 'LoadSAMPriors' for step in out):
        raise ValueError('cityscapes_lq_1024x1024_sam_priors.py: the base pipeline has no '
                         'Degrade step to load SAM priors after')
    return out


train_pipeline = with_sam_priors(_base_.train_pipeline)
# The evaluation pipeline with priors: the clean test pipeline with the evaluation set's
# deterministic Degrade after loading (what DegradedDataset inserts; it keeps this very step).
sam_test_pipeline = with_sam_priors(
    _base_.test_pipeline[:1] + [dict(_base_.degradation, deterministic=True)]
    + _base_.test_pipeline[1:])
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
