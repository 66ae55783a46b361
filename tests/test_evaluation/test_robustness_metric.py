"""PerClassIoUMetric returns mmseg's means plus per-class IoU / accuracy computed by hand."""
import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric

from mmseg_rass.evaluation import PerClassIoUMetric

CLASSES = ('a', 'b', 'c', 'd')


def _samples():
    # 2 images of 2x3 pixels; 255 = ignored; class 'd' never occurs in prediction or label.
    preds = [torch.tensor([[0, 0, 1], [1, 2, 2]]), torch.tensor([[0, 1, 1], [2, 2, 0]])]
    labels = [torch.tensor([[0, 1, 1], [1, 2, 255]]), torch.tensor([[0, 0, 1], [2, 2, 2]])]
    return [dict(pred_sem_seg=dict(data=p[None]), gt_sem_seg=dict(data=g[None]))
            for p, g in zip(preds, labels)]


def _evaluate(metric):
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, _samples())
    return metric.compute_metrics(metric.results)


def test_per_class_values_match_hand_computation():
    metrics = _evaluate(PerClassIoUMetric())
    # (pred/label) of the valid pixels
    # image 1: a/a a/b b/b b/b c/c; image 2: a/a b/a b/b c/c c/c a/c
    # a: inter 2, pred 4, label 3 -> IoU 2/5, Acc 2/3
    # b: inter 3, pred 4, label 4 -> IoU 3/5, Acc 3/4
    # c: inter 3, pred 3, label 4 -> IoU 3/4, Acc 3/4
    expected_iou = {'a': 40.0, 'b': 60.0, 'c': 75.0, 'd': None}
    expected_acc = {'a': round(200 / 3, 2), 'b': 75.0, 'c': 75.0, 'd': None}
    assert metrics['IoU_per_class'] == expected_iou
    assert metrics['Acc_per_class'] == expected_acc
    assert metrics['mIoU'] == pytest.approx(np.mean([40, 60, 75]), abs=0.01)
    assert metrics['aAcc'] == pytest.approx(800 / 11, abs=0.01)


def test_means_identical_to_mmseg_iou_metric():
    ours, theirs = _evaluate(PerClassIoUMetric()), _evaluate(IoUMetric())
    for key in ('aAcc', 'mIoU', 'mAcc'):
        assert ours[key] == theirs[key]


def test_miou_always_computed():
    metrics = _evaluate(PerClassIoUMetric(iou_metrics=['mDice']))
    assert {'mIoU', 'mDice', 'IoU_per_class'} <= set(metrics)
