"""RealLQ: real low-quality images with ADE20K labels (150 classes), in ADE20K layout."""
from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from .utils import check_split_dirs


@DATASETS.register_module()
class RealLQDataset(ADE20KDataset):
    """mmseg's ``ADE20KDataset`` for a folder of real LQ images (``images/<split>/*.jpg``,
    ``annotations/<split>/*.png``, label 0 ignored, ``reduce_zero_label=True``).

    Identical to its parent except that ``img_suffix`` may be changed (real sets often hold
    ``.png``) and a missing folder raises an error saying what layout is expected.

    Args:
        img_suffix (str): suffix of the image files.
        **kwargs: arguments of :class:`mmseg.datasets.ADE20KDataset`.
    """

    def __init__(self, img_suffix='.jpg', **kwargs):
        super().__init__(img_suffix=img_suffix, **kwargs)

    def load_data_list(self):
        check_split_dirs(
            self, 'put the real LQ images under images/<split>/ and their ADE20K-style labels '
            '(0 = ignore, 1..150) under annotations/<split>/ of data_root, or set '
            'data_root/data_prefix in the config')
        return super().load_data_list()
