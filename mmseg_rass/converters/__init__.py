"""Converters from the reference implementations' checkpoints to mmseg_rass formats.

* :mod:`.osediff_lora` — an OSEDiff / SCR pickle (``rank_unet``, ``unet_lora_*_modules``,
  ``state_dict_unet``, VAE LoRA) → an SCR LoRA file (``tools/convert_osediff_lora.py``);
* :mod:`.rass_detectron2` — the RASS authors' Detectron2 checkpoint (RASS backbone +
  Mask2Former) → an mmseg checkpoint of ``configs/rass/rass_mask2former_ade20k_lq.py``
  (``tools/convert_rass_checkpoint.py``).
"""
from .common import KeyMapper, load_reference_checkpoint
from .osediff_lora import convert_osediff_lora
from .rass_detectron2 import convert_rass_state_dict

__all__ = ['KeyMapper', 'load_reference_checkpoint', 'convert_osediff_lora',
           'convert_rass_state_dict']
