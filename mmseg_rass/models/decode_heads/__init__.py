from .segsr_segdm import SegDM

__all__ = ['SegDM']
