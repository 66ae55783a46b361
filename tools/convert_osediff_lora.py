"""Convert an OSEDiff / SCR pickle into an SCR LoRA file.

    python tools/convert_osediff_lora.py preset/model/scr.pkl checkpoints/scr_lora.safetensors

The pickle is the dict OSEDiff's ``save_model`` writes and the RASS code reads as ``scr.pkl``:
``rank_unet``, ``unet_lora_{encoder,decoder,others}_modules``, ``state_dict_unet`` (LoRA A/B of
three peft adapters + ``conv_in.base_layer``) and optionally the VAE-encoder LoRA (``rank_vae``,
``vae_lora_encoder_modules``, ``state_dict_vae``). Every tensor is mapped (nothing is dropped);
the result is checked against the UNet/VAE of ``--arch`` (SD2.1-base by default, built on the
meta device): every LoRA tensor present, none left over, every shape right. The LoraConfigs keep
the reference's alpha (peft's default 8, scale 2 at rank 4). Read with ``weights_only=True``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat)
from mmseg_rass.converters import convert_osediff_lora, load_reference_checkpoint  # noqa: E402
from mmseg_rass.converters.osediff_lora import verify_scr_lora  # noqa: E402
from mmseg_rass.lora import write_scr_lora  # noqa: E402
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, run_cli)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='OSEDiff / SCR pickle (torch.save of a dict)')
    parser.add_argument('out', help='output SCR LoRA file (.safetensors)')
    parser.add_argument('--arch', default='sd21', choices=['sd21', 'tiny'],
                        help='UNet/VAE architecture the adapters must fit (default sd21)')
    add_trust_checkpoint_argument(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    apply_trust_checkpoint(args.trust_checkpoint)
    ckpt = load_reference_checkpoint(args.src)
    scr, report = convert_osediff_lora(ckpt, source=args.src)
    verify_scr_lora(scr, args.arch, source=args.src)
    write_scr_lora(args.out, scr)
    print(f'wrote {args.out}: rank {scr.lora_config.r}, alpha {scr.lora_config.lora_alpha}, '
          f'{report["unet_lora_tensors"]} UNet LoRA tensors + conv_in, '
          f'{report.get("vae_lora_tensors", 0)} VAE LoRA tensors; configuration entries '
          f'{report["config_entries"]}; nothing dropped')
    return report


if __name__ == '__main__':
    run_cli(main)
