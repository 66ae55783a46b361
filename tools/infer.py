"""Segment real (low-quality) photos with a trained model: overlays and label maps.

    python tools/infer.py CONFIG CHECKPOINT IMAGES_OR_DIR [...] --out-dir OUT [--device cuda:0]
        [--trust-checkpoint]

Each image is run through the config's ``test_pipeline`` exactly as it is (mmseg's
``init_model`` / ``inference_model``; no synthetic degradation: the LQ evaluation sets of this
project are ``DegradedDataset`` dataloaders, never the inference pipeline) and gets

* ``OUT/pred/<name>.png``: the label map (class index per pixel, uint8; uint16 above 255
  classes), at the photo's size;
* ``OUT/vis/<name>.png``: the photo with the coloured prediction overlaid (mmseg's
  ``show_result_pyplot``), class names written on it unless ``--no-labels``.

A directory is searched recursively for images; names below it are kept (``a/b.jpg`` →
``pred/a/b.png``). The checkpoint loads strictly with mmengine's loader (a checkpoint of
another model is an error, not a plausible-looking overlay).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
from mmseg_rass.errors import (CheckpointNotFoundError, ConfigError, InputFileError,  # noqa
                               InputNotFoundError)
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, is_url, run_cli)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
# how mmengine's strict load_state_dict begins its RuntimeError for keys or shapes that differ
STRICT_MISMATCH = 'The model and loaded state dict do not match exactly'


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Segment photos with a trained model; write overlays and label maps.')
    parser.add_argument('config', help='model config (its test_pipeline is used)')
    parser.add_argument('checkpoint', help='checkpoint file (e.g. work_dirs/x/iter_300.pth) '
                        'or URL')
    parser.add_argument('inputs', nargs='+', help='image files and/or directories')
    parser.add_argument('--out-dir', required=True, help='output folder (vis/ and pred/)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    parser.add_argument('--opacity', type=float, default=0.5, help='overlay opacity in (0, 1]')
    parser.add_argument('--no-labels', action='store_true', help='no class names on overlays')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/test.py')
    add_trust_checkpoint_argument(parser)
    return parser.parse_args(argv)


def list_images(inputs):
    """(path, output name without extension) of every image given or found under a folder."""
    found = []
    for item in inputs:
        if osp.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        path = osp.join(root, name)
                        found.append((path, osp.splitext(osp.relpath(path, item))[0]))
        elif osp.isfile(item):
            found.append((item, osp.splitext(osp.basename(item))[0]))
        else:
            raise InputNotFoundError(f'input {item} does not exist')
    if not found:
        raise InputNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in {inputs}')
    names = {}
    for path, name in found:
        if name in names:
            raise InputFileError(f'{names[name]} and {path} would both be written as {name}.png: '
                             'pass them in separate runs or put them in one folder')
        names[name] = path
    return found


def check_pipeline(cfg, config):
    """The inference pipeline: the config's ``test_pipeline``, which must not degrade."""
    pipeline = cfg.get('test_pipeline')
    if not pipeline:
        raise ConfigError(f'{config} has no test_pipeline (mmseg\'s inference_model runs it)')
    names = [str(t.get('type')) for t in pipeline]
    if any(n.split('.')[-1] == 'Degrade' for n in names):
        raise ConfigError(f'the test_pipeline of {config} degrades the image ({names}): inference '
                         'on real photos must not; move the degradation of an evaluation set to '
                         'its dataloader (DegradedDataset, see docs/inference.md)')
    return pipeline


def load_model(config, checkpoint, device, cfg_options=None):
    """``init_model`` without weights, then a strict checkpoint load; dataset meta attached."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from mmseg.apis import init_model
    from mmseg.registry import DATASETS

    from mmseg_rass.datasets.degraded_dataset import plain_dataset_cfg

    if not osp.isfile(config):
        raise InputNotFoundError(f'config {config} does not exist')
    if not osp.isfile(checkpoint) and not is_url(checkpoint):
        raise CheckpointNotFoundError(f'checkpoint {checkpoint} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_pipeline(cfg, config)
    if cfg.model.type == 'SAMPriorEncoderDecoder':
        raise ConfigError(f'{config} is an SPT model: it needs SAM masks of each image at '
                         'inference, which tools/infer.py does not compute (docs/sam_priors.md)')
    model = init_model(cfg, None, device='cpu')
    try:
        ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                               logger='silent')
    except RuntimeError as e:
        if not str(e).startswith(STRICT_MISMATCH):  # e.g. compat's error for a damaged file
            raise
        raise InputFileError(f'checkpoint {checkpoint} does not fit the model of {config} '
                             f'(strict loading): {str(e).splitlines()[0]}') from None
    meta = ckpt.get('meta', {}).get('dataset_meta') if isinstance(ckpt, dict) else None
    if not meta:
        dataset_cfg, _ = plain_dataset_cfg(cfg.test_dataloader.dataset)
        meta = dict(DATASETS.get(dataset_cfg['type']).METAINFO)
        print(f'note: {checkpoint} has no dataset_meta; class names and palette from '
              f'{dataset_cfg["type"]}', file=sys.stderr)
    model.dataset_meta = dict(classes=meta['classes'], palette=meta['palette'])
    return model.to(device).eval()


def infer(model, images, out_dir, opacity=0.5, with_labels=True, progress=True):
    """Run ``inference_model`` on each image; write label maps and overlays.

    Args:
        model (BaseSegmentor): from :func:`load_model` (``model.cfg``, ``dataset_meta``).
        images (list[tuple[str, str]]): (path, output name) pairs from :func:`list_images`.
        out_dir (str): output folder.

    Returns:
        list[tuple[str, str]]: (label map, overlay) paths.
    """
    import mmcv
    import numpy as np
    from mmseg.apis import inference_model, show_result_pyplot
    from tqdm import tqdm

    written = []
    for path, name in tqdm(images, desc='infer', unit='img', disable=not progress):
        img = mmcv.imread(path)
        if img is None:
            raise InputFileError(f'cannot read image {path}: the file is corrupt or not an '
                                 'image')
        result = inference_model(model, path)
        labels = result.pred_sem_seg.data[0].cpu().numpy()
        labels = labels.astype(np.uint8 if len(model.dataset_meta['classes']) <= 256
                               else np.uint16)
        pred_path = osp.join(out_dir, 'pred', name + '.png')
        vis_path = osp.join(out_dir, 'vis', name + '.png')
        mmcv.imwrite(labels, pred_path)
        show_result_pyplot(model, mmcv.bgr2rgb(img), result, opacity=opacity, draw_gt=False,
                           show=False, with_labels=with_labels, out_file=vis_path)
        written.append((pred_path, vis_path))
    return written


def main(argv=None):
    args = parse_args(argv)
    apply_trust_checkpoint(args.trust_checkpoint)
    images = list_images(args.inputs)
    model = load_model(args.config, args.checkpoint, args.device, args.cfg_options)
    written = infer(model, images, args.out_dir, args.opacity, not args.no_labels)
    print(f'{len(written)} images: label maps in {osp.join(args.out_dir, "pred")}, overlays in '
          f'{osp.join(args.out_dir, "vis")}')


if __name__ == '__main__':
    run_cli(main)
