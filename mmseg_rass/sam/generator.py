"""Building segment_anything's automatic mask generator (imported only when SAM is used)."""
import os.path as osp

from ..errors import CheckpointNotFoundError, InputFileError

SAM_MODEL_TYPES = ('vit_b', 'vit_l', 'vit_h')
SAM_CHECKPOINT_NAMES = dict(vit_b='sam_vit_b_01ec64.pth', vit_l='sam_vit_l_0b3195.pth',
                            vit_h='sam_vit_h_4b8939.pth')
DEFAULT_GENERATOR_SETTINGS = dict(points_per_side=32, pred_iou_thresh=0.88,
                                  stability_score_thresh=0.95, crop_n_layers=0,
                                  min_mask_region_area=0)


def build_sam_mask_generator(model_type, checkpoint, device='cpu', **settings):
    """A ``SamAutomaticMaskGenerator`` around a SAM model loaded from a local checkpoint.

    Args:
        model_type (str): one of ``vit_b``, ``vit_l``, ``vit_h``.
        checkpoint (str): local SAM checkpoint file.
        device (str): torch device for SAM.
        **settings: ``SamAutomaticMaskGenerator`` arguments overriding
            :data:`DEFAULT_GENERATOR_SETTINGS`.

    Returns:
        SamAutomaticMaskGenerator: the generator (``generate(rgb_uint8_hwc)``).
    """
    if model_type not in SAM_MODEL_TYPES:
        raise ValueError(f'unknown SAM model type {model_type!r}: use one of {SAM_MODEL_TYPES}')
    if not checkpoint or not osp.isfile(checkpoint):
        raise CheckpointNotFoundError(
            f'SAM checkpoint {checkpoint!r} not found: download '
            f'{SAM_CHECKPOINT_NAMES[model_type]} (the {model_type} checkpoint listed in the '
            'segment-anything README) and pass its local path with --sam-checkpoint')
    from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

    from ..compat import load_local_checkpoint
    state = load_local_checkpoint(checkpoint, map_location='cpu')  # safe; one-line errors
    sam = sam_model_registry[model_type]()
    try:
        sam.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:  # another model, or not a state dict
        raise InputFileError(f'SAM checkpoint {checkpoint} does not fit SAM {model_type} '
                             f'({str(e).splitlines()[0]}): pass the {model_type} checkpoint '
                             f'{SAM_CHECKPOINT_NAMES[model_type]}, or the --model-type it is '
                             'for') from None
    return SamAutomaticMaskGenerator(sam.to(device).eval(),
                                     **dict(DEFAULT_GENERATOR_SETTINGS, **settings))
