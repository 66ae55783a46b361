from .spf_neck import SPFNeck
from .spt_neck import SPTNeck

__all__ = ['SPFNeck', 'SPTNeck']
