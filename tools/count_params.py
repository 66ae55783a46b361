"""Count trainable vs total parameters of a segmentation config, per component, without weights.

The model is built on the ``meta`` device (no memory, no weights read). A ``RASSBackbone`` (or
SegSR's ``SRDM``) that points to a local SD2.1-base folder is built from the folder's
``config.json`` files, or from the built-in SD2.1-base architecture when the folder is absent;
an SCR LoRA file is not read (merging it changes no parameter count). The counting lives in
``mmseg_rass/models/param_count.py``.

    python tools/count_params.py configs/rass/rass_cityscapes_lq.py
    python tools/count_params.py configs/segsr/segsr_sd21_cityscapes_lq.py
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
from mmengine.config import Config, DictAction  # noqa: E402

from mmseg_rass.errors import InputNotFoundError  # noqa: E402
from mmseg_rass.models.param_count import count_config  # noqa: E402
from mmseg_rass.tools_entry import run_cli  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, as in tools/train.py')
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        raise InputNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    rows, (trainable, total), notes = count_config(cfg)
    print(f'# {args.config} (built on the meta device)')
    for note in notes:
        print(f'# {note}')
    print('| component | trainable | total | trainable % |')
    print('|---|---:|---:|---:|')
    for name, tr, tot in rows + [('model', trainable, total)]:
        print(f'| {name} | {tr / 1e6:.3f}M | {tot / 1e6:.3f}M | {100 * tr / max(tot, 1):.2f} |')
    return rows, (trainable, total)


if __name__ == '__main__':
    run_cli(main)
