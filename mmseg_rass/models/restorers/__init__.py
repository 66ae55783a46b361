from .scr_data_preprocessor import SCRDataPreprocessor
from .scr_restorer import SCRRestorer
from .segsr_srdm import SRDM

__all__ = ['SCRDataPreprocessor', 'SCRRestorer', 'SRDM']
