# SPD + SGR distillation on the tiny demo SegFormer (CPU), light teacher variant: SPF units on
# the student's (detached) features + a copy of its head, trained by SAMDistillHook with the
# run's optimizer and schedule. The student is a plain EncoderDecoder at test time (no priors in
# the test pipeline). Priors (training split only):
#   python tools/extract_sam_priors.py THIS_CONFIG --split train --stand-in \
#       --out data/demo_cityscapes/sam_priors/rass_x1_stand_in
_base_ = [
    '../_base_/models/segformer_mit-tiny.py',
    '../_base_/datasets/demo_cityscapes_lq_sam_priors.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/demo_200it.py',
]
custom_imports = dict(imports=['mmseg_rass'], allow_failed_imports=False)
model = dict(type='SAMDistillEncoderDecoder')
custom_hooks = [
    dict(
        type='SAMDistillHook',
        teacher=dict(
            type='SAMDistillTeacher',
            neck=dict(type='SPFNeck', in_channels=_base_.model.decode_head.in_channels,
                      mask_drop=0.5),
            decode_head=_base_.model.decode_head,
            spd_loss=dict(type='SPDLoss', loss_weight=0.005),  # λ1 (paper, Table 6)
            # Demo only: random VGG16 weights (nothing to download). Real runs set
            # vgg_weights='checkpoints/vgg16-397923af.pth' as in spd_segformer-b0_cityscapes-lq.py.
            sgr_loss=dict(type='SGRLoss', loss_weight=200., relation='l2',  # λ2 (Table 6)
                          random_init_vgg=True, layer_ids=(3, 8)))),
]
