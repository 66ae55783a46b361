from .demo_cityscapes import DemoCityscapesDataset
from .real_lq import RealLQDataset

__all__ = ['DemoCityscapesDataset', 'RealLQDataset']
