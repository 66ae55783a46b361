"""``RestorationVisualizer``: LQ / restored / HQ side by side, optionally attention vs masks."""
import cv2
import mmcv
import numpy as np
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.visualization import SegLocalVisualizer


def _hwc(pixel_data):
    """PixelData (3, H, W) uint8 RGB → (H, W, 3) numpy."""
    return np.ascontiguousarray(pixel_data.data.cpu().numpy().transpose(1, 2, 0))


@VISUALIZERS.register_module()
class RestorationVisualizer(SegLocalVisualizer):
    """Draw restorer outputs: a row ``LQ | restored | HQ`` (a smaller LQ image of
    super-resolution enlarged by nearest neighbour to the restored size).

    When the output carries ``attn_maps`` (``SCRRestorer(save_attention=True)``), one row per
    named class follows: its GT mask (white) next to its cross-attention map (jet, min-max scaled)
    and the map over the restored image. Outputs without ``pred_img`` are drawn by
    ``SegLocalVisualizer``. Same arguments as ``SegLocalVisualizer``.
    """

    @master_only
    def add_datasample(self, name, image, data_sample=None, draw_gt=True, draw_pred=True,
                       show=False, wait_time=0, out_file=None, step=0, with_labels=True):
        if data_sample is None or 'pred_img' not in data_sample:
            return super().add_datasample(name, image, data_sample, draw_gt, draw_pred, show,
                                          wait_time, out_file, step, with_labels)
        restored = _hwc(data_sample.pred_img)
        lq = _hwc(data_sample.lq_img)
        if lq.shape != restored.shape:  # super-resolution: the LQ pixels, enlarged
            lq = cv2.resize(lq, restored.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        panels = [lq, restored]
        if 'gt_hq_img' in data_sample:
            panels.append(_hwc(data_sample.gt_hq_img))
        rows = [np.concatenate(panels, axis=1)]
        if 'attn_maps' in data_sample:
            rows += self._attention_rows(data_sample, restored, rows[0].shape[1])
        drawn = np.concatenate(rows, axis=0)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)

    @staticmethod
    def _attention_rows(data_sample, restored, width):
        height, img_w = restored.shape[:2]
        labels = data_sample.gt_sem_seg.data[0].cpu().numpy()
        rows = []
        for class_id, attn in zip(data_sample.attn_classes, data_sample.attn_maps.data.cpu().numpy()):
            mask = np.repeat(((labels == class_id) * 255).astype(np.uint8)[..., None], 3, axis=2)
            attn = (attn - attn.min()) / max(float(attn.max() - attn.min()), 1e-8)
            attn = cv2.resize(attn, (img_w, height), interpolation=cv2.INTER_LINEAR)
            heat = cv2.applyColorMap((attn * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
            overlay = (0.5 * restored + 0.5 * heat).astype(np.uint8)
            row = np.concatenate([mask, heat, overlay], axis=1)
            rows.append(np.pad(row, ((0, 0), (0, max(0, width - row.shape[1])), (0, 0)))[:, :width])
        return rows
