"""Latency of the base segmentor, the SPD student and SPT with SAM run on the fly, plus the
cost of the prior cache (load time per sample, bytes per image). Prints a markdown table.

Models are built from their configs with random weights (latency does not depend on the
weights). SAM is the real one when ``--sam-checkpoint`` is given, otherwise ``--sam tiny``
(segment_anything's SAM with a 1-block, 64-dim ViT image encoder and random weights: the
prompt encoder, mask decoder and automatic-generator post-processing are the real ones),
``--sam vit_b`` (segment_anything's ViT-B SAM, random weights: the real model's cost; with
random weights the 0 thresholds keep every mask, so the post-processing is an upper bound) or
``--sam stand-in`` (colour regions, not SAM)::

    python tools/benchmark_sam_priors.py --size 256 512 --iters 10
    python tools/benchmark_sam_priors.py \
        --base-config mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py \
        --spd-config configs/spd/spd_segformer-b0_cityscapes-lq.py \
        --spt-config configs/spt/spt_segformer-b0_cityscapes-lq.py \
        --sam-checkpoint checkpoints/sam_vit_b_01ec64.pth --model-type vit_b --device cuda
"""
import argparse
import copy
import os
import os.path as osp
import shutil
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from mmseg_rass.datasets.demo_data import make_demo_cityscapes  # noqa: E402
from mmseg_rass.sam import (StandInMaskGenerator, build_sam_mask_generator,  # noqa: E402
                            file_sha256, save_sam_prior, select_largest_masks, write_manifest)
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, run_cli)
from mmseg_rass.transforms import LoadSAMPriors  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    configs = osp.join(REPO, 'configs')
    parser.add_argument('--base-config',
                        default=osp.join(configs, 'spt/segformer-tiny_demo-cityscapes-lq.py'))
    parser.add_argument('--spd-config',
                        default=osp.join(configs, 'spd/spd_segformer-tiny_demo-cityscapes-lq.py'))
    parser.add_argument('--spt-config',
                        default=osp.join(configs, 'spt/spt_segformer-tiny_demo-cityscapes-lq.py'))
    parser.add_argument('--size', type=int, nargs=2, default=(256, 512), metavar=('H', 'W'))
    parser.add_argument('--iters', type=int, default=10, help='timed segmentor runs')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--sam-iters', type=int, default=2, help='timed SPT + SAM runs')
    parser.add_argument('--sam', choices=['tiny', 'vit_b', 'stand-in'], default='tiny',
                        help='SAM used without --sam-checkpoint')
    parser.add_argument('--sam-checkpoint', help='real SAM checkpoint (.pth)')
    parser.add_argument('--model-type', default='vit_b')
    parser.add_argument('--points-per-side', type=int, default=32)
    parser.add_argument('--num-masks', type=int, default=16)
    parser.add_argument('--prior-samples', type=int, default=8)
    parser.add_argument('--prior-masks', choices=['stand-in', 'sam'], default='stand-in',
                        help='masks written for the cache measurement: stand-in colour regions '
                        '(fast, smooth regions like trained SAM) or the SAM generator above')
    parser.add_argument('--device', default='cpu')
    add_trust_checkpoint_argument(parser)
    return parser.parse_args(argv)


def build_model(path, device, **overrides):
    """A model from a config file or an ``mmseg::`` config, random weights, eval mode."""
    if '::' in path:
        from mmengine.hub import get_config
        cfg = get_config(path)
    else:
        cfg = Config.fromfile(path)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(overrides)
    model_cfg['test_cfg'] = ConfigDict(mode='whole')
    model_cfg.get('backbone', {}).pop('init_cfg', None)
    return MODELS.build(model_cfg).to(device).eval()


def build_generator(args):
    """The mask generator and its description for the report."""
    if args.sam_checkpoint:
        gen = build_sam_mask_generator(args.model_type, args.sam_checkpoint, args.device,
                                       points_per_side=args.points_per_side)
        return gen, f'SAM {args.model_type} (checkpoint {osp.basename(args.sam_checkpoint)})'
    if args.sam == 'stand-in':
        return StandInMaskGenerator(), 'stand-in colour regions (not SAM)'
    from segment_anything import SamAutomaticMaskGenerator
    from segment_anything.build_sam import _build_sam, build_sam_vit_b
    torch.manual_seed(0)
    if args.sam == 'vit_b':
        sam, name = build_sam_vit_b(checkpoint=None), 'SAM ViT-B (segment_anything'
    else:
        sam = _build_sam(encoder_embed_dim=64, encoder_depth=1, encoder_num_heads=1,
                         encoder_global_attn_indexes=[], checkpoint=None)
        name = 'tiny SAM (segment_anything, 1-block 64-dim ViT encoder'
    gen = SamAutomaticMaskGenerator(sam.to(args.device).eval(),
                                    points_per_side=args.points_per_side,
                                    pred_iou_thresh=0., stability_score_thresh=0.)
    return gen, (f'{name}, random weights, {args.points_per_side}x{args.points_per_side} '
                 'points, thresholds 0)')


def timed(fns, iters, warmup, device):
    """Median seconds per call of each function, calls interleaved so load drift hits all."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(iters):
        for fn, ts in zip(fns, times):
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - start)
    return [float(np.median(ts)) for ts in times]


def main(argv=None):
    args = parse_args(argv)
    apply_trust_checkpoint(args.trust_checkpoint)
    tmp = tempfile.mkdtemp(prefix='bench_sam_priors_')
    try:
        return run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp):
    """Build, time and print; scratch files (demo images, priors) go to ``tmp``.

    Returns:
        dict: latencies in ms (``base_ms``, ``spd_ms``, ``spt_ms``, ``sam_ms``), ``spd_ratio``
        (student / base), ``prior_load_ms`` and ``prior_kib`` of the cache, ``mask_generator``.
    """
    init_default_scope('mmseg')
    h, w = args.size
    n_img = max(args.prior_samples, 1)
    make_demo_cityscapes(tmp, num_train=n_img, num_val=1, height=h, width=w, seed=0)
    img_dir = osp.join(tmp, 'leftImg8bit', 'train')
    paths = sorted(osp.join(d, f) for d, _, fs in os.walk(img_dir) for f in fs)
    import mmcv
    bgr = mmcv.imread(paths[0])
    base = build_model(args.base_config, args.device)
    spd = build_model(args.spd_config, args.device)
    spt = build_model(args.spt_config, args.device)
    inputs = base.data_preprocessor(
        dict(inputs=[torch.from_numpy(bgr.transpose(2, 0, 1).copy())],
             data_samples=[SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                                       pad_shape=(h, w)))]), False)
    x, samples = inputs['inputs'].to(args.device), inputs['data_samples']

    with torch.no_grad():
        t_base, t_spd = timed([lambda: base.predict(x, copy.deepcopy(samples)),
                               lambda: spd.predict(x, copy.deepcopy(samples))],
                              args.iters, args.warmup, args.device)
        generator, sam_name = build_generator(args)
        rgb = mmcv.bgr2rgb(bgr)
        sam_times = []

        def spt_on_the_fly():
            start = time.perf_counter()
            masks, _ = select_largest_masks(generator.generate(rgb), args.num_masks, (h, w))
            sam_times.append(time.perf_counter() - start)
            s = copy.deepcopy(samples)
            s[0].gt_sam_masks = PixelData(data=torch.from_numpy(masks.astype(np.uint8)))
            return spt.predict(x, s)

        t_spt, = timed([spt_on_the_fly], args.sam_iters, min(args.warmup, 1), args.device)
        t_sam = float(np.median(sam_times[-args.sam_iters:]))

    prior_dir = osp.join(tmp, 'priors')
    key = write_manifest(prior_dir, dict(sam_type=sam_name, img_root=tmp,
                                         degradation=[]))['key']
    sizes = []
    prior_gen = generator if args.prior_masks == 'sam' else StandInMaskGenerator()
    prior_name = sam_name if args.prior_masks == 'sam' else 'stand-in colour regions'
    for path in paths:
        masks, valid = select_largest_masks(prior_gen.generate(mmcv.bgr2rgb(mmcv.imread(path))),
                                            args.num_masks, (h, w))
        out = osp.join(prior_dir, osp.relpath(osp.splitext(path)[0], tmp) + '.npz')
        save_sam_prior(out, masks, valid, file_sha256(path), key)
        sizes.append(osp.getsize(out))
    loader = LoadSAMPriors(prior_dir, clean_priors=True)
    dummy = np.zeros((h, w, 3), np.uint8)
    t_load = []
    for _ in range(2):  # first pass: each image hashed and verified; then the cached check
        start = time.perf_counter()
        for path in paths:
            loader(dict(img_path=path, img=dummy, seg_fields=[]))
        t_load.append((time.perf_counter() - start) / len(paths))

    print(f'device: {args.device}, torch threads: {torch.get_num_threads()}, input {h}x{w}, '
          f'K={args.num_masks}; mask generator: {sam_name}')
    print(f'base: {args.base_config}\nSPD: {args.spd_config}\nSPT: {args.spt_config}\n')
    def n_params(model):
        return f'{sum(p.numel() for p in model.parameters()) / 1e6:.3f}M'

    print('| model | parameters | latency (ms/img, median) | × base |')
    print('|---|---|---|---|')
    print(f'| base segmentor | {n_params(base)} | {t_base * 1e3:.1f} | 1.00 |')
    print(f'| SPD student (no SAM) | {n_params(spd)} | {t_spd * 1e3:.1f} | '
          f'{t_spd / t_base:.2f} |')
    print(f'| SPT + SAM on the fly | {n_params(spt)} + SAM | {t_spt * 1e3:.1f} | '
          f'{t_spt / t_base:.2f} |')
    print(f'| (of which SAM + top-K) | | {t_sam * 1e3:.1f} | {t_sam / t_base:.2f} |')
    print(f'\nprior cache: load {t_load[1] * 1e3:.2f} ms/sample (LoadSAMPriors, image hash '
          f'verified before; first load with hashing {t_load[0] * 1e3:.2f} ms), '
          f'{np.mean(sizes) / 1024:.1f} KiB/image (mean of {len(sizes)}; raw bool masks '
          f'would be {args.num_masks * h * w / 1024:.0f} KiB); masks: {prior_name}')
    return dict(base_ms=t_base * 1e3, spd_ms=t_spd * 1e3, spd_ratio=t_spd / t_base,
                spt_ms=t_spt * 1e3, sam_ms=t_sam * 1e3, prior_load_ms=t_load[1] * 1e3,
                prior_kib=float(np.mean(sizes)) / 1024, mask_generator=sam_name)


if __name__ == '__main__':
    run_cli(main)
