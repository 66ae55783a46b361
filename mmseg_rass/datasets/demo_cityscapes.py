"""The generated demo dataset (Cityscapes layout, 19 classes)."""
from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS

from .demo_data import check_generator_version
from .utils import check_split_dirs


@DATASETS.register_module()
class DemoCityscapesDataset(CityscapesDataset):
    """mmseg's ``CityscapesDataset`` on the demo data made by ``tools/make_demo_data.py``.

    Identical to its parent except that a missing folder, or a folder written by another
    version of the generator (its manifest says so), raises an error saying how to generate
    the data.
    """

    def load_data_list(self):
        root = self.data_root or 'data/demo_cityscapes'
        check_split_dirs(
            self, f'generate the demo data with `python tools/make_demo_data.py --out {root}`')
        if self.data_root:
            check_generator_version(self.data_root, type(self).__name__)
        return super().load_data_list()
