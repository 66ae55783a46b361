"""The RASS paper's Table 1 protocol (DT / R2S / FT on low-quality images) for any mmseg model.

One row (a method):
    python tools/lq_protocol.py [CONFIG CHECKPOINT] [--name NAME]
        [--restorer RESTORER_CONFIG [RESTORER_CHECKPOINT]] [--ft FT_CONFIG FT_CHECKPOINT]
        [--cfg-options KEY=VALUE ...] [--paper METHOD] --eval-sets SET [SET ...]
        [--set-options KEY=VALUE ...] [--fps-warmup N] [--fps-images N] [--work-dir DIR]
        [--trust-checkpoint]
Several rows from a file (.py / .json / .yaml with rows = [dict(name=..., config=...,
checkpoint=..., restorer_config=..., restorer_checkpoint=..., ft_config=...,
ft_checkpoint=..., paper=..., cfg_options=dict(...)), ...] and optionally eval_sets = [...]):
    python tools/lq_protocol.py --rows ROWS_FILE [--eval-sets SET ...] [--work-dir DIR]
One table of several results:
    python tools/lq_protocol.py --merge A/lq_protocol.json B/lq_protocol.json --work-dir DIR

SET: demo, cityscapes-lq, ade20k-lq (degraded here, deterministically), ade20k-lq-released
(the authors' degraded ADE20K-val), real-lq; NAME=DATA_ROOT to read it elsewhere;
NAME:CONFIG[=DATA_ROOT] for any config whose test_dataloader is the set.
See docs/rass.md ("Table 1 as one command").
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from mmseg_rass.evaluation import lq_protocol  # noqa: E402
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, run_cli, usage_errors)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Evaluate segmentors on low-quality images as the RASS paper\'s Table 1: '
        'DT (clean-trained model), R2S (restore, then the clean-trained model), FT '
        '(LQ-fine-tuned model), with FPS and parameter counts.')
    parser.add_argument('config', nargs='?', help='the clean-trained model\'s config (DT, and '
                        'R2S\'s segmentor); mmseg:: configs allowed')
    parser.add_argument('checkpoint', nargs='?', help='its checkpoint (file or http(s) URL)')
    parser.add_argument('--name', help='row name (default: the config\'s or FT config\'s name)')
    parser.add_argument('--restorer', nargs='+', metavar=('CONFIG', 'CHECKPOINT'),
                        help='R2S restorer: a config whose model is a restorer (SCR, SegSR, ...) '
                        'or a RestoreThenSegment, and optionally its checkpoint (.pth) or SCR '
                        'LoRA file (.safetensors)')
    parser.add_argument('--ft', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
                        help='the model fine-tuned on LQ images (FT)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override settings of the row\'s segmentor configs (CONFIG and '
                        'the --ft one), as in tools/test.py')
    parser.add_argument('--paper', choices=list(lq_protocol.PAPER_TABLE1),
                        help='show this row of the paper\'s Table 1 beside (default: the row '
                        'name, if it is one)')
    parser.add_argument('--rows', metavar='FILE', help='rows (and eval_sets) from a file')
    parser.add_argument('--eval-sets', nargs='+', metavar='SET', help='evaluation sets: '
                        f'{", ".join(lq_protocol.EVAL_SETS)}; NAME=DATA_ROOT; '
                        'NAME:CONFIG[=DATA_ROOT]')
    parser.add_argument('--set-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override settings of every evaluation set\'s config, e.g. '
                        'test_dataloader.num_workers=0')
    parser.add_argument('--fps-warmup', type=int, default=5,
                        help='untimed model calls before each FPS measurement (default 5)')
    parser.add_argument('--fps-images', type=int, default=50,
                        help='images timed for each FPS (default 50, at most the set)')
    parser.add_argument('--work-dir', help='output folder (default work_dirs/lq_protocol); '
                        'finished cells cached there are reused while their content matches')
    parser.add_argument('--merge', nargs='+', metavar='JSON',
                        help='lq_protocol.json files to render as one table (no evaluation)')
    add_trust_checkpoint_argument(parser)
    args = parser.parse_args(argv)
    if args.restorer is not None and len(args.restorer) > 2:
        parser.error('--restorer takes CONFIG and at most one CHECKPOINT')
    single = args.config or args.ft or args.restorer
    if args.merge is not None and (single or args.rows):
        parser.error('--merge renders saved results: pass no model and no --rows with it')
    if args.rows and single:
        parser.error('pass one row on the command line or --rows FILE, not both')
    if args.merge is None and not (single or args.rows):
        parser.error('pass CONFIG CHECKPOINT (and --restorer / --ft), --ft alone, --rows FILE '
                     'or --merge')
    return parser, args


def _row(args):
    name = args.name or osp.splitext(osp.basename(args.config or args.ft[0]))[0]
    restorer = args.restorer or [None]
    return lq_protocol.Row(
        name=name, config=args.config, checkpoint=args.checkpoint, restorer_config=restorer[0],
        restorer_checkpoint=restorer[1] if len(restorer) > 1 else None,
        ft_config=args.ft[0] if args.ft else None, ft_checkpoint=args.ft[1] if args.ft else None,
        paper=args.paper, cfg_options=args.cfg_options or {})


def main(argv=None):
    parser, args = parse_args(argv)
    work_dir = args.work_dir or 'work_dirs/lq_protocol'
    with usage_errors(parser):
        if args.merge is not None:
            lq_protocol.merge(args.merge, work_dir)
            print(f'wrote {osp.join(work_dir, "lq_protocol.json")} and .md')
            return
        apply_trust_checkpoint(args.trust_checkpoint)
        rows, sets = lq_protocol.load_rows(args.rows) if args.rows else ([_row(args)], [])
        if args.eval_sets:
            sets = [lq_protocol.parse_eval_set(s) for s in args.eval_sets]
        for eval_set in sets:
            eval_set.cfg_options = dict(eval_set.cfg_options or {}, **(args.set_options or {}))
        result = lq_protocol.run_protocol(rows, sets, work_dir, args.fps_warmup,
                                          args.fps_images)
        print(lq_protocol.format_table(result), end='')


if __name__ == '__main__':
    run_cli(main)
