from .scr_data_preprocessor import SCRDataPreprocessor
from .scr_restorer import SCRRestorer

__all__ = ['SCRDataPreprocessor', 'SCRRestorer']
