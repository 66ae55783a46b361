"""Pseudo-label a folder of images with any mmseg model, so SegSR trains on any image folder.

    python tools/make_pseudo_labels.py CONFIG CHECKPOINT IMAGE_DIR --out-dir OUT \
        [--cache-dir DIR] [--device cuda] [--trust-checkpoint]

Real-ISR training sets (DIV2K, Flickr2K, LSDIR, OST, FFHQ) have no segmentation labels; SegSR's
SegDM learns from the label maps a segmentation model predicts on the HQ images (the paper's
prior is a SegFormer). For every image below IMAGE_DIR the model's prediction (mmseg's
``init_model`` / ``inference_model``, the config's ``test_pipeline``, strict checkpoint loading
as ``tools/infer.py``) is written as ``OUT/<relative name>.png`` (uint8 class indices at the
image's size, 255 = ignore never written), and ``OUT/meta.json`` holds the model's
``classes`` and ``palette`` — ``RealISRDataset(label_meta=OUT/meta.json)`` takes them, and
``segdm.num_classes`` must equal their number.

Predictions are cached by content: the key is the SHA-256 of the image bytes, of the checkpoint
bytes (an http(s) checkpoint is downloaded once, into a folder of its own per URL, and that file
is hashed and loaded) and of the resolved config text, so a changed image, model or config is
labelled again and nothing stale is reused (cache: ``--cache-dir``, default
``~/.cache/mmseg_rass/pseudo_labels``).
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import shutil
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
from infer import list_images, load_model  # noqa: E402  (tools/infer.py)

from mmseg_rass.errors import ConfigError, InputFileError, InputNotFoundError  # noqa: E402
from mmseg_rass.evaluation.cells import local_checkpoint  # noqa: E402
from mmseg_rass.sam.prior_io import file_sha256  # noqa: E402
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, run_cli)

DEFAULT_CACHE = osp.join(osp.expanduser('~'), '.cache', 'mmseg_rass', 'pseudo_labels')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Write pseudo-label maps of a folder of images with any mmseg model.')
    parser.add_argument('config', help='mmseg config of the labelling model')
    parser.add_argument('checkpoint', help='its checkpoint (file or http(s) URL)')
    parser.add_argument('image_dir', help='folder of images (searched recursively)')
    parser.add_argument('--out-dir', required=True, help='folder for the label maps')
    parser.add_argument('--cache-dir', default=DEFAULT_CACHE, help='content-keyed cache')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/test.py')
    add_trust_checkpoint_argument(parser)
    return parser.parse_args(argv)


def model_key(model, checkpoint_sha256):
    """The labelling model's part of the cache key: checkpoint bytes and resolved config."""
    digest = hashlib.sha256(checkpoint_sha256.encode())
    digest.update(model.cfg.pretty_text.encode('utf-8'))
    return digest.hexdigest()


def pseudo_label(model, images, out_dir, cache_dir, key, progress=True):
    """Write one label map per image (from the cache when present); return (written, cached).

    Args:
        model (BaseSegmentor): From ``tools/infer.py``'s ``load_model``.
        images (list[tuple[str, str]]): (path, relative name) from ``list_images``.
        out_dir (str): Output folder.
        cache_dir (str): Cache folder.
        key (str): :func:`model_key` of the model.
    """
    import mmcv
    import numpy as np
    from mmseg.apis import inference_model
    from tqdm import tqdm

    cached = 0
    for path, name in tqdm(images, desc='pseudo-labels', unit='img', disable=not progress):
        image_hash = file_sha256(path)
        entry = hashlib.sha256(f'{key}|{image_hash}'.encode()).hexdigest()
        cache_path = osp.join(cache_dir, entry[:2], entry + '.png')
        out_path = osp.join(out_dir, name + '.png')
        os.makedirs(osp.dirname(out_path), exist_ok=True)
        if osp.isfile(cache_path):
            cached += 1
        else:
            if mmcv.imread(path) is None:
                raise InputFileError(f'cannot read image {path}: the file is corrupt or not an '
                                     'image')
            labels = inference_model(model, path).pred_sem_seg.data[0].cpu().numpy()
            os.makedirs(osp.dirname(cache_path), exist_ok=True)
            tmp = cache_path + '.tmp.png'
            mmcv.imwrite(labels.astype(np.uint8), tmp)
            os.replace(tmp, cache_path)  # no half-written cache entry
        shutil.copyfile(cache_path, out_path)
    return len(images), cached


def main(argv=None):
    args = parse_args(argv)
    apply_trust_checkpoint(args.trust_checkpoint)
    if not osp.isdir(args.image_dir):
        raise InputNotFoundError(f'image folder {args.image_dir} does not exist')
    images = list_images([args.image_dir])
    checkpoint = local_checkpoint(args.checkpoint)  # the bytes hashed are the bytes loaded
    model = load_model(args.config, checkpoint, args.device, args.cfg_options)
    classes = list(model.dataset_meta['classes'])
    if len(classes) > 255:
        raise ConfigError(f'{args.config} has {len(classes)} classes: pseudo-label maps are '
                          'uint8 with 255 = ignore, so at most 255 classes')
    checkpoint_sha256 = file_sha256(checkpoint)
    written, cached = pseudo_label(model, images, args.out_dir, args.cache_dir,
                                   model_key(model, checkpoint_sha256))
    meta = dict(classes=classes, palette=[list(map(int, c)) for c in
                                          model.dataset_meta['palette']],
                config=args.config, checkpoint_sha256=checkpoint_sha256,
                num_images=written)
    with open(osp.join(args.out_dir, 'meta.json'), 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=1)
    print(f'{written} label maps ({cached} from the cache) of {len(classes)} classes in '
          f'{args.out_dir}; classes and palette in {osp.join(args.out_dir, "meta.json")}')


if __name__ == '__main__':
    run_cli(main)
