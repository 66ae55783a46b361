from .bn_stats_hook import RankZeroBNStatsHook
from .rass_prompt_hook import RASSPromptHook
from .rng_state_hook import RNGStateHook
from .sam_distill_hook import SAMDistillHook
from .scr_dataset_meta_hook import SCRDatasetMetaHook

__all__ = ['RankZeroBNStatsHook', 'RASSPromptHook', 'RNGStateHook', 'SAMDistillHook',
           'SCRDatasetMetaHook']
