"""The generated demo dataset (Cityscapes layout, 19 classes)."""
from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS

from .utils import check_split_dirs


@DATASETS.register_module()
class DemoCityscapesDataset(CityscapesDataset):
    """mmseg's ``CityscapesDataset`` on the demo data made by ``tools/make_demo_data.py``.

    Identical to its parent except that a missing folder raises an error saying how to
    generate the data.
    """

    def load_data_list(self):
        check_split_dirs(
            self, 'generate the demo data with `python tools/make_demo_data.py --out '
            f'{self.data_root or "data/demo_cityscapes"}`')
        return super().load_data_list()
