from .degrade_data_preprocessor import DegradeSegDataPreProcessor
from .segsr_data_preprocessor import SegSRDataPreProcessor

__all__ = ['DegradeSegDataPreProcessor', 'SegSRDataPreProcessor']
