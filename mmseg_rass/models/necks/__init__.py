from .segsr_dmb import DualModalityBridge
from .spf_neck import SPFNeck
from .spt_neck import SPTNeck

__all__ = ['DualModalityBridge', 'SPFNeck', 'SPTNeck']
