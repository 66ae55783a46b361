"""A cheap, deterministic mask generator with the output schema of SAM's automatic generator."""
import cv2
import numpy as np


class StandInMaskGenerator:
    """Colour-quantisation + connected-components masks, for tests, demos and CPU benchmarks.

    ``generate`` returns what ``segment_anything.SamAutomaticMaskGenerator.generate`` returns
    (a list of dicts with ``segmentation`` (H, W) bool, ``area``, ``bbox`` XYWH,
    ``predicted_iou``, ``point_coords``, ``stability_score``, ``crop_box``), unsorted. It is
    not SAM: regions are connected areas of similar colour.

    Args:
        num_colors (int): colour clusters (k-means on pixels, fixed initialisation).
        min_area (int): smallest region kept, in pixels.
        iters (int): k-means iterations.
    """

    def __init__(self, num_colors=6, min_area=16, iters=5):
        self.num_colors = num_colors
        self.min_area = min_area
        self.iters = iters

    @property
    def settings(self):
        """Generator settings recorded in the prior manifest."""
        return dict(num_colors=self.num_colors, min_area=self.min_area, iters=self.iters)

    def generate(self, image):
        """Make masks for one image.

        Args:
            image (np.ndarray): (H, W, 3) uint8 RGB image.

        Returns:
            list[dict]: SAM-style mask records.
        """
        h, w = image.shape[:2]
        pixels = image.reshape(-1, 3).astype(np.float32)
        centers = np.quantile(pixels, np.linspace(0, 1, self.num_colors), axis=0)
        for _ in range(self.iters):
            labels = ((pixels[:, None] - centers[None]) ** 2).sum(-1).argmin(1)
            for c in range(self.num_colors):
                if np.any(labels == c):
                    centers[c] = pixels[labels == c].mean(0)
        labels = labels.reshape(h, w)
        records = []
        for c in range(self.num_colors):
            count, comp, stats, _ = cv2.connectedComponentsWithStats(
                (labels == c).astype(np.uint8), connectivity=4)
            for j in range(1, count):
                x, y, bw, bh, area = (int(v) for v in stats[j])
                if area < self.min_area:
                    continue
                records.append(dict(segmentation=comp == j, area=area, bbox=[x, y, bw, bh],
                                    predicted_iou=1.0, point_coords=[[x + bw / 2, y + bh / 2]],
                                    stability_score=1.0, crop_box=[0, 0, w, h]))
        return records
