"""Super-resolve photos with a trained SegSR: the SR image and its segmentation side by side.

    python tools/upscale.py CONFIG CHECKPOINT IMAGES_OR_DIR [...] --out-dir OUT \
        [--tile 128] [--overlap 32] [--steps N] [--device cuda] [--trust-checkpoint]

For each photo (h, w) the model's ``scale`` s (4 for the Real-ISR configs) gives

* ``OUT/sr/<name>.png``: the super-resolved image, exactly (s·h, s·w);
* ``OUT/seg/<name>.png``: SegDM's label map (class per pixel, uint8) at the same size;
* ``OUT/vis/<name>.png``: the SR image and its coloured segmentation side by side.

The model and checkpoint (a file or an http(s) URL) load as in ``tools/infer.py`` (mmseg's
``init_model``, strict checkpoint loading, the checkpoint's class names and palette). A photo
larger than ``--tile`` LQ pixels is processed in overlapping tiles (``SegSR.sample`` on each,
the same starting noise for every tile); their SR images and class probabilities are blended
with weights that fall linearly to zero across the overlap, so no seam is left where two tiles
meet. The photo itself is the LQ input: nothing degrades it.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
from infer import list_images, load_model  # noqa: E402  (tools/infer.py)

from mmseg_rass.errors import (ConfigError, InputFileError, InputNotFoundError,  # noqa: E402
                               ParameterError)
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, run_cli)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Super-resolve photos with a trained SegSR; write SR images and '
        'segmentations.')
    parser.add_argument('config', help='SegSR config (model.scale is the upscaling factor)')
    parser.add_argument('checkpoint', help='checkpoint file (e.g. work_dirs/x/iter_400.pth) '
                        'or URL')
    parser.add_argument('inputs', nargs='+', help='image files and/or directories')
    parser.add_argument('--out-dir', required=True, help='output folder (sr/, seg/, vis/)')
    parser.add_argument('--tile', type=int, default=128,
                        help='tile size in input (LQ) pixels; 0 = the whole image at once')
    parser.add_argument('--overlap', type=int, default=32, help='tile overlap in input pixels')
    parser.add_argument('--steps', type=int, help='reverse steps (default: the config\'s)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='weight of the colours over the SR image in vis/')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/test.py')
    add_trust_checkpoint_argument(parser)
    return parser.parse_args(argv)


def tile_starts(length, tile, overlap):
    """Start offsets of tiles of ``tile`` pixels covering ``length`` with ``overlap``."""
    if tile <= 0 or length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def blend_ramp(size, start, length, overlap, scale):
    """1-D blending weights (s·size,) of a tile: rising over the overlap it shares with the
    previous tile, falling over the one with the next, 1 elsewhere and at the image border."""
    import torch
    weights = torch.ones(scale * size)
    ramp = scale * min(overlap, size)
    if ramp <= 0:
        return weights
    rise = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp
    if start > 0:
        weights[:ramp] = rise
    if start + size < length:
        weights[-ramp:] = torch.minimum(weights[-ramp:], rise.flip(0))
    return weights


def upscale_image(model, img, tile=128, overlap=32, num_steps=None, progress=None):
    """Super-resolve and segment one image with ``model.sample`` on blended tiles.

    Args:
        model (SegSR): In eval mode.
        img (Tensor): (1, 3, h, w) RGB in [-1, 1] (the model's input normalisation).
        tile (int): Tile size in input pixels (0: the whole image).
        overlap (int): Overlap of neighbouring tiles in input pixels (< ``tile``).
        num_steps (int, optional): Reverse steps.
        progress (callable, optional): Called once per tile.

    Returns:
        tuple[Tensor, Tensor]: SR image (1, 3, s·h, s·w) in [-1, 1] and class probabilities
        (1, K, s·h, s·w).
    """
    import torch
    if tile > 0 and not 0 <= overlap < tile:
        raise ParameterError(f'--overlap {overlap} must be in [0, --tile {tile})')
    s = model.scale
    _, _, h, w = img.shape
    sr = img.new_zeros((1, 3, s * h, s * w))
    probs = img.new_zeros((1, model.num_classes, s * h, s * w))
    total = img.new_zeros((1, 1, s * h, s * w))
    for top in tile_starts(h, tile, overlap):
        for left in tile_starts(w, tile, overlap):
            th, tw = (min(tile, h), min(tile, w)) if tile > 0 else (h, w)
            out = model.sample(img[..., top:top + th, left:left + tw], num_steps=num_steps)
            weight = (blend_ramp(th, top, h, overlap, s)[:, None] *
                      blend_ramp(tw, left, w, overlap, s)[None]).to(img)
            rows, cols = slice(s * top, s * (top + th)), slice(s * left, s * (left + tw))
            sr[..., rows, cols] += weight * out['restored']
            probs[..., rows, cols] += weight * out['seg_logits'].softmax(dim=1)
            total[..., rows, cols] += weight
            if progress is not None:
                progress()
    return sr / total, probs / total


def count_tiles(height, width, tile, overlap):
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def upscale(model, images, out_dir, tile=128, overlap=32, num_steps=None, opacity=0.5,
            progress=True):
    """Write ``sr/``, ``seg/`` and ``vis/`` outputs of every image (see the module docstring).

    Returns:
        list[str]: The SR image paths.
    """
    import mmcv
    import numpy as np
    import torch
    from tqdm import tqdm

    loaded = []
    for path, name in images:
        img = mmcv.imread(path)
        if img is None:
            raise InputFileError(f'cannot read image {path}: the file is corrupt or not an '
                                 'image')
        loaded.append((img, name))
    palette = np.asarray(model.dataset_meta['palette'], dtype=np.uint8)
    written = []
    with tqdm(total=sum(count_tiles(*img.shape[:2], tile, overlap) for img, _ in loaded),
              desc='upscale', unit='tile', disable=not progress) as bar:
        for img, name in loaded:
            data = model.data_preprocessor(
                dict(inputs=[torch.from_numpy(img).permute(2, 0, 1)]), False)
            with torch.no_grad():
                sr, probs = upscale_image(model, data['inputs'], tile, overlap, num_steps,
                                          bar.update)
            sr = ((sr[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
            labels = probs[0].argmax(dim=0).cpu().numpy().astype(np.uint8)
            colours = (opacity * palette[labels] + (1 - opacity) * sr).round().astype(np.uint8)
            sr_path = osp.join(out_dir, 'sr', name + '.png')
            mmcv.imwrite(mmcv.rgb2bgr(sr), sr_path)
            mmcv.imwrite(labels, osp.join(out_dir, 'seg', name + '.png'))
            mmcv.imwrite(mmcv.rgb2bgr(np.concatenate([sr, colours], axis=1)),
                         osp.join(out_dir, 'vis', name + '.png'))
            written.append(sr_path)
    return written


def check_segsr(config):
    """One clear error unless ``config`` builds a SegSR model."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from mmseg_rass.models.segmentors.segsr import SegSR
    if not osp.isfile(config):
        raise InputNotFoundError(f'config {config} does not exist')
    kind = MODELS.get(Config.fromfile(config).model.type)
    if not (isinstance(kind, type) and issubclass(kind, SegSR)):
        raise ConfigError(f'{config} builds a {getattr(kind, "__name__", kind)}, not a SegSR '
                          'model: tools/upscale.py needs a SegSR config (configs/segsr/)')


def main(argv=None):
    args = parse_args(argv)
    apply_trust_checkpoint(args.trust_checkpoint)
    images = list_images(args.inputs)
    check_segsr(args.config)
    model = load_model(args.config, args.checkpoint, args.device, args.cfg_options)
    if len(model.dataset_meta['classes']) > 255:
        raise ConfigError(f'{args.config} has {len(model.dataset_meta["classes"])} classes: '
                          'tools/upscale.py writes uint8 label maps, so at most 255')
    written = upscale(model, images, args.out_dir, args.tile, args.overlap, args.steps,
                      args.opacity)
    print(f'{len(written)} images x{model.scale}: SR images in '
          f'{osp.join(args.out_dir, "sr")}, segmentations in {osp.join(args.out_dir, "seg")}, '
          f'side by side in {osp.join(args.out_dir, "vis")}')


if __name__ == '__main__':
    run_cli(main)
