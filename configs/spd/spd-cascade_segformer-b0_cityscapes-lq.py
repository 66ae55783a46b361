# SPD + SGR as in the paper: a second network (N2, a SegFormer-B0 whose input is the image and
# the student's class probabilities, 3 + 19 channels) with an SPF unit after the last
# transformer block of each of its 4 stages, supervised by the ground truth and distilled into
# the student. Everything else as spd_segformer-b0_cityscapes-lq.py (priors, VGG, λ1, λ2,
# schedule); inference runs the student alone. N2's backbone loads MiT-B0 ImageNet weights
# except its first layer (it reads 22 channels), which starts random.
_base_ = ['./spd_segformer-b0_cityscapes-lq.py']
custom_hooks = [
    dict(
        type='SAMDistillHook',
        teacher=dict(
            type='SAMCascadeTeacher',
            backbone=dict(_base_.model.backbone, in_channels=3 + 19),  # image + class probs
            decode_head=_base_.model.decode_head,
            spf_blocks=['layers.0.1.1', 'layers.1.1.1', 'layers.2.1.1', 'layers.3.1.1'],
            spf_channels=_base_.model.decode_head.in_channels,
            mask_drop=0.5,
            spd_loss=_base_.custom_hooks[0].teacher.spd_loss,
            sgr_loss=_base_.custom_hooks[0].teacher.sgr_loss)),
]
