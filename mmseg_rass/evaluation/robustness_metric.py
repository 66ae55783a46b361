"""mmseg's IoU metric with the per-class table returned as values (not only logged)."""
import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """``IoUMetric`` that also returns per-class IoU and accuracy.

    mmseg's metric prints its per-class table to the log and returns only the means. This one
    returns the same means plus ``IoU_per_class`` and ``Acc_per_class``: dicts mapping each class
    name to its value in percent (2 decimals, as in mmseg's table), or ``None`` for a class that
    is absent from both prediction and ground truth (``NaN`` in mmseg's table). Arguments are
    those of :class:`mmseg.evaluation.IoUMetric`; ``'mIoU'`` is always computed.
    """

    def __init__(self, iou_metrics=('mIoU', ), **kwargs):
        iou_metrics = list(iou_metrics)
        if 'mIoU' not in iou_metrics:
            iou_metrics.insert(0, 'mIoU')
        super().__init__(iou_metrics=iou_metrics, **kwargs)

    def compute_metrics(self, results):
        """Compute mmseg's metrics and add the per-class IoU and accuracy.

        Args:
            results (list[tuple[Tensor]]): per image, mmseg's ``(area_intersect, area_union,
                area_pred_label, area_label)``, each of shape (num_classes, ).

        Returns:
            dict: mmseg's ``aAcc``, ``mIoU``, ``mAcc`` (…) plus ``IoU_per_class`` and
            ``Acc_per_class`` (dict[str, float | None]).
        """
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        areas = [sum(area) for area in zip(*results)]
        per_class = self.total_area_to_metrics(*areas, ['mIoU'], self.nan_to_num)
        classes = self.dataset_meta['classes']
        for key in ('IoU', 'Acc'):
            metrics[f'{key}_per_class'] = {
                name: None if np.isnan(value) else round(float(value) * 100, 2)
                for name, value in zip(classes, per_class[key])
            }
        return metrics
