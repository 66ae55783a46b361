"""SPD/SGR distillation: gradients reach only the student (and the teacher's own terms)."""
import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

IN_CHANNELS = [8, 16, 24, 32]
HEAD = dict(type='SegformerHead', in_channels=IN_CHANNELS, in_index=[0, 1, 2, 3], channels=16,
            num_classes=5, norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))
STUDENT = dict(
    type='SAMDistillEncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.] * 3, std=[1.] * 3),
    backbone=dict(type='MixVisionTransformer', in_channels=3, embed_dims=8, num_stages=4,
                  num_layers=[1, 1, 1, 1], num_heads=[1, 2, 3, 4], patch_sizes=[7, 3, 3, 3],
                  sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3), mlp_ratio=2),
    decode_head=HEAD,
    test_cfg=ConfigDict(mode='whole'))
TEACHER = dict(type='SAMDistillTeacher', neck=dict(type='SPFNeck', in_channels=IN_CHANNELS),
               decode_head=HEAD, spd_loss=dict(type='SPDLoss', loss_weight=1.0),
               sgr_loss=dict(type='SGRLoss', loss_weight=100., random_init_vgg=True,
                             layer_ids=(3, )))


def _batch(b=2, h=32, w=48, k=6):
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(b):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, h, w), generator=g))
        s.gt_sam_masks = PixelData(data=(torch.rand(k, h, w, generator=g) > 0.6).to(torch.uint8))
        samples.append(s)
    return torch.randn(b, 3, h, w, generator=g), samples


def _grads(module):
    return {n for n, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum()}


def test_distillation_gradients_are_routed():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    student, teacher = MODELS.build(STUDENT), MODELS.build(TEACHER)
    student.attach_teacher(teacher)
    inputs, samples = _batch()
    losses = student.loss(inputs, samples)
    assert {'decode.loss_ce', 'teacher.loss_ce', 'loss_spd', 'loss_sgr'} <= set(losses)
    assert losses['loss_spd'] > 0 and losses['loss_sgr'] > 0
    (losses['loss_spd'] + losses['loss_sgr']).backward(retain_graph=True)
    assert not _grads(teacher)
    student_grads = _grads(student)
    assert any(n.startswith('backbone.') for n in student_grads)
    assert any(n.startswith('decode_head.') for n in student_grads)
    student.zero_grad()
    losses['teacher.loss_ce'].backward(retain_graph=True)
    assert not _grads(student)
    assert any(n.startswith('neck.') for n in _grads(teacher))
    teacher.zero_grad()
    losses['decode.loss_ce'].backward()
    assert not _grads(teacher) and _grads(student)


def test_teacher_is_not_part_of_the_student():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    student = MODELS.build(STUDENT)
    plain = MODELS.build(dict(copy.deepcopy(STUDENT), type='EncoderDecoder'))
    plain.load_state_dict(student.state_dict())
    n_params = len(list(student.parameters()))
    student.attach_teacher(MODELS.build(TEACHER))
    assert len(list(student.parameters())) == n_params
    assert not any(k.startswith(('teacher', '_sam')) for k in student.state_dict())
    student.attach_teacher(None)
    inputs, samples = _batch()
    for s in samples:  # without a teacher nothing needs priors
        del s.gt_sam_masks
    torch.manual_seed(1)  # same head-dropout draws
    ours = student.loss(inputs, samples)
    torch.manual_seed(1)
    ref = plain.loss(inputs, samples)
    assert set(ours) == set(ref)
    assert torch.allclose(ours['decode.loss_ce'], ref['decode.loss_ce'])
    student.eval()
    pred = student.predict(inputs, samples)
    assert pred[0].pred_sem_seg.data.shape == (1, 32, 48)


CASCADE = dict(
    type='SAMCascadeTeacher',
    backbone=dict(STUDENT['backbone'], in_channels=3 + 5),
    decode_head=HEAD,
    spf_blocks=['layers.0.1.0', 'layers.1.1.0', 'layers.2.1.0', 'layers.3.1.0'],
    spf_channels=IN_CHANNELS, mask_drop=0.,
    spd_loss=dict(type='SPDLoss', loss_weight=1.0),
    sgr_loss=dict(type='SGRLoss', loss_weight=100., random_init_vgg=True, layer_ids=(3, )))


def test_cascade_teacher_reads_student_output_and_fuses_priors_per_block():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    student, teacher = MODELS.build(STUDENT), MODELS.build(CASCADE)
    assert teacher.backbone.layers[0][0].projection.in_channels == 3 + 5  # image + probs
    seen = []
    for name, module in teacher.backbone.named_modules():
        if name in CASCADE['spf_blocks']:  # tokens (B, h*w, C) reach the units as NCHW
            module.register_forward_hook(lambda m, a, o, n=name: seen.append((n, o.shape)))
    units = []
    for unit in teacher.spf_units:
        unit.register_forward_hook(lambda m, a, o: units.append(a[0].shape))
    inputs, samples = _batch()
    masks = torch.stack([s.gt_sam_masks.data for s in samples]).float()
    logits = student.decode_head(student.extract_feat(inputs))
    out = teacher(inputs, logits, masks)
    assert out.shape == logits.shape
    assert [n for n, _ in seen] == CASCADE['spf_blocks']
    assert [tuple(s[1:2]) for s in units] == [(c, ) for c in IN_CHANNELS]
    # the teacher depends on the student's output and on the SAM masks
    other_logits = teacher(inputs, logits + 5 * torch.randn_like(logits), masks)
    assert not torch.allclose(out, other_logits)
    assert not torch.allclose(out, teacher(inputs, logits, torch.zeros_like(masks)))
    with pytest.raises(RuntimeError, match='ran without SAM masks'):
        teacher.backbone(torch.cat([inputs, logits.new_zeros(2, 5, 32, 48)], 1))


def test_cascade_distillation_gradients_are_routed():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    student, teacher = MODELS.build(STUDENT), MODELS.build(CASCADE)
    student.attach_teacher(teacher)
    inputs, samples = _batch()
    losses = student.loss(inputs, samples)
    assert {'decode.loss_ce', 'teacher.loss_ce', 'loss_spd', 'loss_sgr'} <= set(losses)
    (losses['loss_spd'] + losses['loss_sgr']).backward(retain_graph=True)  # Eq. 8
    assert not _grads(teacher) and _grads(student)
    student.zero_grad()
    losses['teacher.loss_ce'].backward(retain_graph=True)  # N1 learns only from L1 + distill
    assert not _grads(student)
    assert {n.split('.')[0] for n in _grads(teacher)} == {'backbone', 'decode_head', 'spf_units'}
    teacher.zero_grad()
    losses['decode.loss_ce'].backward()
    assert not _grads(teacher) and _grads(student)


def test_cascade_teacher_config_errors():
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match=r"no module 'layers\.9'.*layers\.0\.0"):
        MODELS.build(dict(CASCADE, spf_blocks=['layers.9'], spf_channels=[8]))
    with pytest.raises(ValueError, match='in_channels is 8, not 3'):
        MODELS.build(dict(CASCADE, backbone=dict(CASCADE['backbone'], in_channels=3)))
    with pytest.raises(ValueError, match='same length'):
        MODELS.build(dict(CASCADE, spf_channels=IN_CHANNELS[:2]))
    inputs, samples = _batch()
    masks = torch.stack([s.gt_sam_masks.data for s in samples]).float()
    logits = torch.zeros(2, 5, 8, 12)
    wrong = MODELS.build(dict(CASCADE, spf_channels=[8, 16, 24, 99]))
    with pytest.raises(ValueError, match=r"'layers\.3\.1\.0' outputs 32 channels, "
                       r'spf_channels\[3\] is 99'):
        wrong(inputs, logits, masks)
    order = MODELS.build(dict(CASCADE, spf_blocks=['layers.1.1.0', 'layers.0.1.0'],
                              spf_channels=[16, 8]))
    with pytest.raises(RuntimeError, match='in execution order'):
        order(inputs, logits, masks)
