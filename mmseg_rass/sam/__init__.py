"""SAM priors: mask-average pooling, the prior cache and mask generators.

Nothing here imports ``segment_anything`` at import time; only
:func:`build_sam_mask_generator` does, when called.
"""
from .batching import stack_sam_masks
from .extract import degradation_spec, extract_sam_priors, prior_pipeline
from .generator import (DEFAULT_GENERATOR_SETTINGS, SAM_MODEL_TYPES,
                        build_sam_mask_generator)
from .pooling import (drop_masks, mask_average_pool, mask_pooled_descriptors,
                      resize_masks)
from .prior_io import (MANIFEST_NAME, PRIOR_FORMAT, SAMPrior, file_sha256, load_sam_prior,
                       manifest_key, prior_path, read_manifest, save_sam_prior,
                       select_largest_masks, update_empty_priors, write_manifest)
from .prior_source import RestorerPriorSource, module_sha256
from .stand_in import StandInMaskGenerator

__all__ = [
    'stack_sam_masks', 'degradation_spec', 'extract_sam_priors', 'prior_pipeline',
    'DEFAULT_GENERATOR_SETTINGS', 'SAM_MODEL_TYPES', 'build_sam_mask_generator', 'drop_masks',
    'mask_average_pool', 'mask_pooled_descriptors', 'resize_masks', 'MANIFEST_NAME',
    'PRIOR_FORMAT', 'SAMPrior', 'file_sha256', 'load_sam_prior', 'manifest_key', 'prior_path',
    'read_manifest', 'save_sam_prior', 'select_largest_masks', 'update_empty_priors',
    'write_manifest', 'RestorerPriorSource', 'module_sha256', 'StandInMaskGenerator'
]
