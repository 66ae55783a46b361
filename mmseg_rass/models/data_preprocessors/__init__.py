from .degrade_data_preprocessor import DegradeSegDataPreProcessor

__all__ = ['DegradeSegDataPreProcessor']
