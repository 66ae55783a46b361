from .scl_loss import SCLLoss
from .sgr_loss import SGRLoss
from .spd_loss import SPDLoss

__all__ = ['SCLLoss', 'SGRLoss', 'SPDLoss']
