"""Export the trained SCR adapter of a checkpoint to an SCR LoRA file (safetensors).

    python tools/export_scr_lora.py work_dirs/scr/iter_20000.pth scr_lora.safetensors [--config CFG]
        [--trust-checkpoint]

The file holds the UNet's peft LoRA state dict, the trained ``conv_in``, the VAE-encoder LoRA
(when trained) and the exact ``LoraConfig``s (format ``mmseg_rass.scr_lora.v1``, see
``mmseg_rass/lora.py`` and ``docs/scr.md``); ``RASSBackbone(scr_lora=...)`` and
``SCRRestorer(scr_lora=...)`` read it. The restorer is rebuilt from the config saved in the
checkpoint (or ``--config``), without the LPIPS loss (no LPIPS weights needed), so its
``pretrained_model_path`` must exist on this machine.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers SCRRestorer)
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, run_cli)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='SCR checkpoint written by tools/train.py (or URL)')
    parser.add_argument('out', help='output .safetensors file')
    parser.add_argument('--config', help='config of the run (default: the one in the checkpoint)')
    add_trust_checkpoint_argument(parser)
    return parser.parse_args(argv)


def export(checkpoint, out, config=None):
    """Build the SCR restorer of ``config``, load ``checkpoint`` and write its LoRA to ``out``."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from mmengine.runner.checkpoint import _load_checkpoint
    from mmseg.registry import MODELS

    ckpt = _load_checkpoint(checkpoint, map_location='cpu')  # a file or URL, loaded safely
    if config is not None:
        cfg = Config.fromfile(config)
    elif 'cfg' in ckpt.get('meta', {}):
        cfg = Config.fromstring(ckpt['meta']['cfg'], file_format='.py')
    else:
        raise ValueError(f'{checkpoint} carries no config (meta.cfg): pass --config CFG')
    if cfg.model.get('type') != 'SCRRestorer':
        raise ValueError(f'{checkpoint}: the model is {cfg.model.get("type")!r}, not an '
                         'SCRRestorer; only SCR checkpoints hold an SCR LoRA')
    # Only the adapters are exported: no LPIPS weights needed (LPIPS holds no trained tensor).
    model = MODELS.build(dict(cfg.model, lpips_weight=0))
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    model.save_lora(out)
    return model


def main(argv=None):
    args = parse_args(argv)
    apply_trust_checkpoint(args.trust_checkpoint)
    export(args.checkpoint, args.out, args.config)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    run_cli(main)
