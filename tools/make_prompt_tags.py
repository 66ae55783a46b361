"""Write per-image prompt tags (RAM, DAPE or any tagger) into a tag cache.

    # the authors' recipe: RAM tags of the clean training images and of the LQ test images
    python tools/make_prompt_tags.py configs/rass/rass_mask2former_ade20k_lq.py --split train \
        --image clean --tagger my_taggers:ram_tags --tagger-name ram \
        --tagger-weights ram_swin_large_14m.pth --out data/ade20k_ram_tags.json
    python tools/make_prompt_tags.py configs/rass/rass_mask2former_ade20k_lq.py --split val \
        --tagger my_taggers:ram_tags --tagger-name ram \
        --tagger-weights ram_swin_large_14m.pth --out data/ade20k_ram_tags.json
    # prompts already written by OSEDiff's test script (one <image stem>.txt per image)
    python tools/make_prompt_tags.py CONFIG --split val --from-txt results/txt \
        --tagger-name dape_txt --out tags.json

``--tagger module:function`` names any callable taking an RGB uint8 image (H, W, 3) and
returning a string or a list of strings (joined with ", "). The images are those of
``<split>_dataloader.dataset``: ``--image pipeline`` (default) applies the dataset's loading and
``Degrade`` steps (``Degrade`` forced deterministic, as for validation), i.e. the LQ image the
model sees; ``--image clean`` tags the file as it is. Each entry is keyed by the SHA-256 of the
image file, the tagger's identity (``--tagger-name``, ``--tagger-version``, the SHA-256 of
``--tagger-weights``) and the degradation that made the tagged image (its ``Degrade`` settings
and the file name that seeds them; none for ``--image clean`` or a pipeline without
``Degrade``): a cache survives moving the data, and tags of another tagger, degradation or
image content are never reused. Entries already in the cache are skipped (``--overwrite`` to
redo them). Models read the cache with ``prompt=dict(type='tags', cache=..., tagger=NAME,
degradation=...)`` (the tool prints the line).
"""
import argparse
import copy
import importlib
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
from mmengine.config import Config, DictAction  # noqa: E402

from mmseg_rass.errors import ConfigError, InputNotFoundError  # noqa: E402
from mmseg_rass.tools_entry import run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='mmseg config whose dataset split is tagged')
    parser.add_argument('--out', required=True, help='tag cache (JSON) to write or extend')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--tagger', help='module:callable(rgb_uint8_hwc) -> str | list[str]')
    source.add_argument('--from-txt', help='folder of <image stem>.txt prompt files')
    parser.add_argument('--tagger-name', required=True,
                        help='name of the tagger (e.g. ram, dape), part of every entry\'s key')
    parser.add_argument('--tagger-version', help='its version (part of the key)')
    parser.add_argument('--tagger-weights', help='its weights file (SHA-256 part of the key)')
    parser.add_argument('--image', default='pipeline', choices=['pipeline', 'clean'],
                        help='tag the image after the loading+Degrade steps, or the file as is')
    parser.add_argument('--overwrite', action='store_true', help='re-tag images already cached')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings (e.g. data_root)')
    return parser.parse_args(argv)


def load_tagger(spec):
    """Import ``module:callable``."""
    module, _, name = spec.partition(':')
    if not name:
        raise ValueError(f'--tagger must look like module:callable, got {spec!r}')
    tagger = getattr(importlib.import_module(module), name, None)
    if not callable(tagger):
        raise ValueError(f'--tagger {spec}: {module} has no callable {name!r}')
    return tagger


def txt_tagger(folder):
    """A tagger reading ``<folder>/<image stem>.txt`` (OSEDiff's saved prompts)."""

    def tag(rgb, img_path):
        path = osp.join(folder, osp.splitext(osp.basename(img_path))[0] + '.txt')
        if not osp.isfile(path):
            raise FileNotFoundError(f'no prompt file {path} for {img_path}')
        with open(path, encoding='utf-8') as f:
            return f.read().strip()

    return tag


def make_tags(dataset_cfg, out, tagger, identity, info, image='pipeline', overwrite=False,
              with_path=False):
    """Tag every image of a dataset split and extend the cache ``out``.

    Args:
        dataset_cfg (dict): An mmseg dataset config.
        out (str): Tag cache file.
        tagger (callable): ``tagger(rgb)`` (or ``tagger(rgb, img_path)`` with ``with_path``).
        identity (dict): The tagger's ``name`` and optional ``version`` and ``weights`` (file).
        info (dict): Description of the run, recorded in the cache.
        image (str): ``'pipeline'`` or ``'clean'``.
        overwrite (bool): Re-tag images already in the cache.
        with_path (bool): Pass the image path to the tagger too.

    Returns:
        dict: Counts ``tagged`` and ``skipped``, the tagger ``identity`` and the
        ``degradation`` config the tags were made with (None: the files as they are).
    """
    import mmcv
    from mmcv.transforms import Compose
    from mmseg.registry import DATASETS

    from mmseg_rass.models.prompts import (PromptTagCache, degradation_key, tag_entry_key,
                                           tagger_identity, write_prompt_tags)
    from mmseg_rass.sam.extract import prior_pipeline, unwrap_dataset_cfg
    from mmseg_rass.sam.prior_io import file_sha256
    dataset_cfg = unwrap_dataset_cfg(dataset_cfg)
    steps, degrades = prior_pipeline(dataset_cfg.get('pipeline', []), clean_priors=True)
    if image == 'clean':
        steps, degrades = steps[:1], []
    weights = identity.get('weights')
    record = dict(identity=tagger_identity(identity['name'], identity.get('version'), weights),
                  name=identity['name'], version=identity.get('version'),
                  weights_sha256=file_sha256(weights) if weights else None)
    dataset = DATASETS.build(dict(copy.deepcopy(dataset_cfg), pipeline=[]))
    known = set()
    if osp.isfile(out) and not overwrite:
        known = set(PromptTagCache(out).entries)
    pipeline = Compose(steps)
    root = dataset_cfg.get('data_root') or ''
    entries, skipped = {}, 0
    for i in range(len(dataset)):
        img_path = dataset.get_data_info(i)['img_path']
        digest = file_sha256(img_path)
        made_by = degradation_key(degrades, img_path)
        key = tag_entry_key(digest, record['identity'], made_by)
        if key in known or key in entries:
            skipped += 1
            continue
        rgb = mmcv.bgr2rgb(pipeline(dict(img_path=img_path, seg_fields=[]))['img'])
        tags = tagger(rgb, img_path) if with_path else tagger(rgb)
        if not isinstance(tags, str):
            tags = ', '.join(str(t) for t in tags)
        entries[key] = dict(image_sha256=digest, tagger=record['identity'], degradation=made_by,
                            path=osp.relpath(img_path, root) if root else img_path, tags=tags)
    write_prompt_tags(out, entries, record, dict(info, tagger=record['identity'], image=image,
                                                 degradation=degrades, images=len(entries),
                                                 time=time.strftime('%Y-%m-%d %H:%M')))
    return dict(tagged=len(entries), skipped=skipped, identity=record['identity'],
                degradation=[{k: v for k, v in d.items() if k != 'deterministic'}
                             for d in degrades] or None)


def main(argv=None):
    from mmengine.registry import init_default_scope
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise InputNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    key = f'{args.split}_dataloader'
    if key not in cfg:
        raise ConfigError(f'{args.config} has no {key}: choose another --split')
    if args.from_txt:
        tagger, source, with_path = txt_tagger(args.from_txt), f'txt:{args.from_txt}', True
    else:
        tagger, source, with_path = load_tagger(args.tagger), args.tagger, False
    identity = dict(name=args.tagger_name, version=args.tagger_version,
                    weights=args.tagger_weights)
    counts = make_tags(cfg[key]['dataset'].to_dict(), args.out, tagger, identity,
                       dict(source=source, split=args.split, config=osp.basename(args.config)),
                       args.image, args.overwrite, with_path)
    print(f'{args.out}: {counts["tagged"]} images tagged, {counts["skipped"]} already there '
          f'(tagger {counts["identity"]})')
    print(f"read them with prompt=dict(type='tags', cache={args.out!r}, "
          f"tagger={args.tagger_name!r}, degradation={counts['degradation']!r})")
    return counts


if __name__ == '__main__':
    run_cli(main)
