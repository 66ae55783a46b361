# SPD + SGR on the tiny demo SegFormer with the paper's cascade: a second tiny SegFormer (N2)
# reads the image and the student's class probabilities (3 + 19 channels) and has an SPF unit
# after each of its 4 stages (one transformer block each); it is supervised by the ground truth
# and distilled into the student. Everything else as spd_segformer-tiny_demo-cityscapes-lq.py.
_base_ = ['./spd_segformer-tiny_demo-cityscapes-lq.py']
custom_hooks = [
    dict(
        type='SAMDistillHook',
        teacher=dict(
            type='SAMCascadeTeacher',
            backbone=dict(_base_.model.backbone, in_channels=3 + 19),  # image + class probs
            decode_head=_base_.model.decode_head,
            spf_blocks=['layers.0.1.0', 'layers.1.1.0', 'layers.2.1.0', 'layers.3.1.0'],
            spf_channels=_base_.model.decode_head.in_channels,
            mask_drop=0.5,
            spd_loss=_base_.custom_hooks[0].teacher.spd_loss,
            sgr_loss=_base_.custom_hooks[0].teacher.sgr_loss)),
]
