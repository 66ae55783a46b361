from .rass_backbone import RASSBackbone
from .rass_optim_constructor import RASSOptimWrapperConstructor

__all__ = ['RASSBackbone', 'RASSOptimWrapperConstructor']
