from .rng_state_hook import RNGStateHook
from .sam_distill_hook import SAMDistillHook
from .scr_dataset_meta_hook import SCRDatasetMetaHook

__all__ = ['RNGStateHook', 'SAMDistillHook', 'SCRDatasetMetaHook']
