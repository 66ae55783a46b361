from .degraded_dataset import DegradedDataset
from .demo_cityscapes import DemoCityscapesDataset
from .real_isr import RealISRDataset
from .real_lq import RealLQDataset

__all__ = ['DegradedDataset', 'DemoCityscapesDataset', 'RealISRDataset', 'RealLQDataset']
