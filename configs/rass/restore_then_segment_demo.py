# Restore-then-segment (R2S, the paper's baseline) on the demo data degraded online: the tiny SCR
# restorer (its LoRA file) restores each LQ image, then the FPN-R18 baseline trained on clean
# images segments it. Evaluation only; the checkpoint given to tools/test.py is the segmentor's:
#   python tools/train.py configs/baseline/fpn_r18_demo_cityscapes.py --work-dir work_dirs/fpn_r18
#   python tools/test.py configs/rass/restore_then_segment_demo.py work_dirs/fpn_r18/iter_300.pth
# with the SCR LoRA file of configs/scr/scr_tiny_demo.py at work_dirs/scr_tiny_demo/scr_lora.safetensors.
_base_ = ['../baseline/fpn_r18_demo_cityscapes.py']
model = dict(
    _delete_=True,
    type='RestoreThenSegment',
    restorer=dict(type='SCRRestorer', scr_lora='work_dirs/scr_tiny_demo/scr_lora.safetensors',
                  scl_loss=None, arch='tiny'),
    segmentor={{_base_.model}},
    # None: RestoreThenSegment's own preprocessor (RGB in [-1, 1] for the restorer). Without the
    # key, mmengine's Runner would put the segmentor config's top-level data_preprocessor
    # (ImageNet mean/std) here and the restorer would see wrongly normalised images.
    data_preprocessor=None)
# Evaluation on the degraded demo val split; the inherited test_pipeline stays clean, so on a real
# low-quality photo (MMSegInferencer, tools/infer.py) the restorer sees the photo as it is.
val_dataloader = dict(dataset=dict(
    type='DegradedDataset', dataset_type='DemoCityscapesDataset',
    degradation=dict(type='Degrade', preset='rass_x1')))
test_dataloader = val_dataloader
