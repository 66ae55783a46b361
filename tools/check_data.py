"""Check the image and label files of a config's datasets, naming every bad file.

    python tools/check_data.py CONFIG [--splits train val test] [--mode fast|full]
        [--cfg-options KEY=VALUE ...]

Training and testing already run the ``fast`` check when they build a dataset (see
``mmseg_rass/datasets/data_check.py``); ``--mode full`` also decodes every image and label
with the decoders training uses. Exit status 1 when a split has problems.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers the plug-in's datasets)
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmseg_rass.datasets.data_check import (DATA_CHECK_ENV, MODES, DataCheckError,  # noqa: E402
                                            check_dataset)
from mmseg_rass.errors import InputNotFoundError  # noqa: E402
from mmseg_rass.tools_entry import run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='mmseg config file')
    parser.add_argument('--splits', nargs='+', default=['train', 'val', 'test'],
                        choices=['train', 'val', 'test'], help='dataloaders to check')
    parser.add_argument('--mode', default='full', choices=[m for m in MODES if m != 'off'],
                        help='fast: headers and PNG integrity; full: decode everything '
                        '(default)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


def build_unchecked(registry, dataset_cfg):
    """Build a dataset without the check that runs at build (the tool runs its own)."""
    saved = os.environ.get(DATA_CHECK_ENV)
    os.environ[DATA_CHECK_ENV] = 'off'
    try:
        return registry.build(dataset_cfg)
    finally:
        if saved is None:
            os.environ.pop(DATA_CHECK_ENV)
        else:
            os.environ[DATA_CHECK_ENV] = saved


def main(argv=None):
    """Check each split; print one line per split; return the number of failing splits."""
    from mmseg.registry import DATASETS
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise InputNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    failed, seen = 0, set()
    for split in args.splits:
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:
            print(f'{split}: no {split}_dataloader in the config')
            continue
        key = repr(loader.dataset)
        if key in seen:
            print(f'{split}: same dataset as above')
            continue
        seen.add(key)
        try:
            dataset = build_unchecked(DATASETS, loader.dataset)
            count = check_dataset(dataset, mode=args.mode)
            print(f'{split}: {count} samples OK ({args.mode} check)' if count else
                  f'{split}: nothing checked (no LoadImageFromFile / LoadAnnotations in the '
                  'pipeline: other loaders are not judged)')
        except (DataCheckError, FileNotFoundError) as e:
            failed += 1
            print(f'{split}: {e}')
    return failed


if __name__ == '__main__':
    sys.exit(1 if run_cli(main) else 0)
