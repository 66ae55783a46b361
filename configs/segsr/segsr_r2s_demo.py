# Restore-then-segment with SegSR as the restorer: the tiny SegSR demo restores each degraded
# image (its joint reverse process, restored image only), then the FPN-R18 baseline trained on
# clean images segments it. Evaluation only; the checkpoint given to tools/test.py is the
# segmentor's, the restorer's comes from `restorer_checkpoint`:
#   python tools/train.py configs/segsr/segsr_tiny_demo.py
#   python tools/train.py configs/baseline/fpn_r18_demo_cityscapes.py --work-dir work_dirs/fpn_r18
#   python tools/test.py configs/segsr/segsr_r2s_demo.py work_dirs/fpn_r18/iter_300.pth
_base_ = ['../baseline/fpn_r18_demo_cityscapes.py', './_base_/segsr_tiny.py']
model = dict(
    _delete_=True,
    type='RestoreThenSegment',
    restorer={{_base_.segsr_model}},
    restorer_checkpoint='work_dirs/segsr_tiny_demo/iter_400.pth',
    segmentor={{_base_.model}},
    # None: RestoreThenSegment's own preprocessor (RGB in [-1, 1] for the restorer). Without the
    # key, mmengine's Runner would put the segmentor config's top-level data_preprocessor
    # (ImageNet mean/std) here and the restorer would see wrongly normalised images.
    data_preprocessor=None)
# Evaluation on the LQ val split (DegradedDataset); the inherited test_pipeline stays clean.
val_dataloader = dict(dataset=dict(
    type='DegradedDataset', dataset_type='DemoCityscapesDataset',
    degradation=dict(type='Degrade', preset='rass_x1')))
test_dataloader = val_dataloader
