"""Run SAM's automatic mask generator once per image of a dataset split and cache the priors.

Examples::

    python tools/extract_sam_priors.py configs/spt/spt_segformer-b0_cityscapes-lq.py \
        --split train --sam-checkpoint ckpt/sam_vit_b_01ec64.pth --model-type vit_b \
        --out data/cityscapes/sam_priors/lq_vit_b --shard 0/4 --device cuda:0
    python tools/extract_sam_priors.py configs/spt/spt_segformer-tiny_demo-cityscapes-lq.py \
        --split train --stand-in --out data/demo_cityscapes/sam_priors/rass_x1_stand_in
    # SPD paper, Eq. 2: SAM on a restorer's output (here SCR) instead of the LQ image
    python tools/extract_sam_priors.py \
        configs/spd/spd-cascade_segformer-tiny_demo-cityscapes-lq.py --split train --stand-in \
        --prior-source restorer --restorer-config configs/rass/restore_then_segment_demo.py \
        --out data/demo_cityscapes/sam_priors/rass_x1_scr_stand_in

The images are those of ``<split>_dataloader.dataset`` after its loading and ``Degrade``
steps (``Degrade`` forced deterministic), i.e. the LQ image for LQ datasets; a pipeline without
``Degrade`` is refused unless the config's ``LoadSAMPriors`` has ``clean_priors=True`` (or
``--clean-priors``). With ``--prior-source restorer`` each such image is first restored by the
restorer of ``--restorer-config``. Current prior files (same image bytes, same settings) are
skipped, so an interrupted run resumes; stale or broken ones are re-extracted; ``--shard i/n``
splits the work across processes.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmseg_rass.errors import ConfigError, InputNotFoundError, ParameterError  # noqa: E402
from mmseg_rass.sam import (DEFAULT_GENERATOR_SETTINGS, SAM_MODEL_TYPES,  # noqa: E402
                            RestorerPriorSource, StandInMaskGenerator, build_sam_mask_generator,
                            extract_sam_priors, file_sha256)
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, run_cli)


def parse_shard(text):
    """Parse ``i/n``."""
    try:
        index, count = (int(v) for v in text.split('/'))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f'--shard must look like i/n (e.g. 0/4), got {text}') \
            from e
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f'--shard i/n needs 0 <= i < n, got {text}')
    return index, count


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='mmseg config whose dataset split is processed')
    parser.add_argument('--out', required=True, help='prior folder to write')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--sam-checkpoint', help='local SAM checkpoint (.pth)')
    source.add_argument('--stand-in', action='store_true',
                        help='use the cheap colour-region stand-in generator (demo/tests), not SAM')
    parser.add_argument('--model-type', default='vit_b', choices=SAM_MODEL_TYPES)
    parser.add_argument('--num-masks', type=int, default=16, help='K largest masks kept')
    parser.add_argument('--points-per-side', type=int,
                        default=DEFAULT_GENERATOR_SETTINGS['points_per_side'])
    parser.add_argument('--pred-iou-thresh', type=float,
                        default=DEFAULT_GENERATOR_SETTINGS['pred_iou_thresh'])
    parser.add_argument('--stability-score-thresh', type=float,
                        default=DEFAULT_GENERATOR_SETTINGS['stability_score_thresh'])
    parser.add_argument('--prior-source', choices=['image', 'restorer'], default='image',
                        help='SAM sees the pipeline\'s (LQ) image, or its restoration by the '
                        'restorer of --restorer-config (SPD paper, Eq. 2)')
    parser.add_argument('--restorer-config',
                        help='config whose model is a restorer or has a restorer entry '
                        '(e.g. configs/rass/restore_then_segment_demo.py)')
    parser.add_argument('--restorer-checkpoint', help='restorer weights (mmengine checkpoint '
                        'file or URL)')
    add_trust_checkpoint_argument(parser)
    parser.add_argument('--clean-priors', action='store_true',
                        help='allow a pipeline without Degrade (priors of undegraded images)')
    parser.add_argument('--shard', type=parse_shard, default=(0, 1), help='i/n')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings (e.g. data_root)')
    return parser.parse_args(argv)


def build_generator(args):
    """The mask generator and its manifest description."""
    if args.stand_in:
        generator = StandInMaskGenerator()
        return generator, dict(sam_type='stand_in', checkpoint=None, checkpoint_sha256=None,
                               generator=generator.settings)
    settings = dict(DEFAULT_GENERATOR_SETTINGS, points_per_side=args.points_per_side,
                    pred_iou_thresh=args.pred_iou_thresh,
                    stability_score_thresh=args.stability_score_thresh)
    generator = build_sam_mask_generator(args.model_type, args.sam_checkpoint, args.device,
                                         **settings)
    return generator, dict(sam_type=args.model_type,
                           checkpoint=osp.basename(args.sam_checkpoint),
                           checkpoint_sha256=file_sha256(args.sam_checkpoint), generator=settings)


def main(argv=None):
    args = parse_args(argv)
    apply_trust_checkpoint(args.trust_checkpoint)
    if not osp.isfile(args.config):
        raise InputNotFoundError(f'config {args.config} not found')
    if (args.prior_source == 'restorer') != bool(args.restorer_config):
        raise ParameterError('--prior-source restorer and --restorer-config go together')
    if args.restorer_checkpoint and not args.restorer_config:
        raise ParameterError('--restorer-checkpoint needs --prior-source restorer '
                             '--restorer-config')
    if args.restorer_config and not osp.isfile(args.restorer_config):
        raise InputNotFoundError(f'restorer config {args.restorer_config} not found')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    key = f'{args.split}_dataloader'
    if key not in cfg:
        raise ConfigError(f'{args.config} has no {key}: choose another --split')
    generator, info = build_generator(args)
    source = None
    if args.prior_source == 'restorer':
        source = RestorerPriorSource.from_config(args.restorer_config, args.restorer_checkpoint,
                                                 args.device)
    counts = extract_sam_priors(cfg[key]['dataset'].to_dict(), args.out, generator, info,
                                args.num_masks, args.shard, progress=not args.no_progress,
                                clean_priors=args.clean_priors, prior_source=source)
    print(f'SAM priors in {args.out}: {counts["done"]} written ({counts["replaced"]} of them '
          f'replaced stale or broken files, {counts["empty"]} without any mask), '
          f'{counts["skipped"]} already current, {counts["total"]} in shard '
          f'{args.shard[0]}/{args.shard[1]}')


if __name__ == '__main__':
    run_cli(main)
