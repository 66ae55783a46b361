"""Convert the RASS authors' released checkpoint (Detectron2, RASS + Mask2Former) for mmseg.

    python tools/convert_rass_checkpoint.py preset/model/rass.pth checkpoints/rass_m2f_ade20k.pth
    python tools/test.py configs/rass/rass_mask2former_released_ade20k_val.py \
        checkpoints/rass_m2f_ade20k.pth --cfg-options model.backbone.scr_lora=None

Every tensor of the authors' model is mapped to ``configs/rass/rass_mask2former_ade20k_lq.py``
(or ``--config``) or dropped for a stated reason (printed); the result is checked against that
config's model built on the meta device (SD2.1-base shapes): every tensor it loads is filled,
none is left over, every shape matches. The UNet in the checkpoint already has the SCR LoRA
merged, so evaluate with ``model.backbone.scr_lora=None``; the SD folder still provides the text
encoder for the prompts. Read with ``weights_only=True``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, run_cli)

DEFAULT_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                          'configs/rass/rass_mask2former_ade20k_lq.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help="the authors' checkpoint (Detectron2: {'model': ...})")
    parser.add_argument('out', help='output mmseg checkpoint (.pth)')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='mmseg config the checkpoint is for (default: RASS + Mask2Former)')
    parser.add_argument('--arch', default='sd21', choices=['sd21', 'tiny'],
                        help='SD architecture of the target model (default SD2.1-base)')
    add_trust_checkpoint_argument(parser)
    return parser.parse_args(argv)


def build_target(config, arch='sd21'):
    """The config's model with random SD weights of ``arch`` on the meta device (shapes only)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmseg_rass.models.prompts import drop_tag_prompts
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.backbone.update(pretrained_model_path=None, arch=arch, scr_lora=None)
    drop_tag_prompts(cfg.model.backbone)  # no tensors in prompts: no tag cache needed here
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def convert(src, out, config=DEFAULT_CONFIG, arch='sd21'):
    """Convert ``src`` into ``out`` for ``config``; return (state dict, dropped counts)."""
    import torch

    from mmseg_rass.converters import convert_rass_state_dict, load_reference_checkpoint
    from mmseg_rass.converters.rass_detectron2 import target_shapes
    from mmseg_rass.lora import check_keys, check_shapes
    ckpt = load_reference_checkpoint(src)
    state = ckpt.get('model', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f'{src} holds no Detectron2 model state dict ({{"model": ...}})')
    mapped, dropped = convert_rass_state_dict(state, source=src)
    expected = target_shapes(build_target(config, arch))
    check_keys(expected, mapped, f'the model of {config}', src)
    check_shapes(expected, mapped, f'the model of {config}', src)
    torch.save(dict(state_dict=mapped,
                    meta=dict(converted_from=osp.basename(src), config=osp.basename(config),
                              dropped=dict(dropped))), out)
    return mapped, dropped


def main(argv=None):
    args = parse_args(argv)
    apply_trust_checkpoint(args.trust_checkpoint)
    mapped, dropped = convert(args.src, args.out, args.config, args.arch)
    print(f'wrote {args.out}: {len(mapped)} tensors, every tensor of the model of '
          f'{osp.basename(args.config)} filled')
    for why, count in sorted(dropped.items()):
        print(f'  dropped {count:5d}: {why}')
    print('evaluate with --cfg-options model.backbone.scr_lora=None (the SCR LoRA is merged in '
          'the checkpoint)')
    return mapped, dropped


if __name__ == '__main__':
    run_cli(main)
