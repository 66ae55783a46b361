"""Training-step time and peak memory of a (RASS) segmentation config at a given crop and batch,
or (``--infer``) its inference speed.

One step = forward + loss + backward + AdamW step on random images and labels. On CUDA the peak
is ``torch.cuda.max_memory_allocated``; on CPU it is the process's peak resident memory.
``--infer`` times ``test_step`` (data preprocessor, the config's ``test_cfg`` — e.g. sliding
windows —, logits resized to the input) on random uint8 images of ``--crop`` size, batch
``--batch``, and reports images/s with the window layout used.

    python tools/benchmark_rass.py configs/rass/rass_tiny_demo.py --crop 128 256 --batch 4
    # SD2.1-base shapes with random weights (no download), bf16, on a GPU:
    python tools/benchmark_rass.py configs/rass/rass_cityscapes_lq.py --arch sd21 \
        --crop 512 1024 --batch 2 --device cuda --amp bfloat16 [--grad-ckpt]
    # inference at the ADE20K test size (short side 512), batch 1:
    python tools/benchmark_rass.py configs/rass/rass_ade20k_lq.py --arch sd21 --infer \
        --crop 512 683 --batch 1 --device cuda --amp bfloat16
"""
import argparse
import os.path as osp
import resource
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from mmseg_rass.errors import InputNotFoundError  # noqa: E402
from mmseg_rass.models.prompts import drop_tag_prompts  # noqa: E402
from mmseg_rass.tools_entry import run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--crop', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--iters', type=int, default=5, help='timed steps')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', choices=['float32', 'bfloat16', 'float16'], default='float32',
                        help='autocast dtype of the step (the backbone also stores its frozen '
                        'weights in bfloat16 when this is bfloat16)')
    parser.add_argument('--grad-ckpt', action='store_true', help='UNet gradient checkpointing')
    parser.add_argument('--infer', action='store_true',
                        help='time inference (test_step) instead of a training step')
    parser.add_argument('--arch', help="RASS backbone: random weights of this architecture "
                        "('tiny', 'sd21') instead of the config's SD folder")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    return parser.parse_args(argv)


def build_model(args):
    if not osp.isfile(args.config):
        raise InputNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    backbone = cfg.model.backbone
    if backbone.get('type') == 'RASSBackbone':
        if args.arch:
            backbone.pop('pretrained_model_path', None)
            backbone.update(arch=args.arch, scr_lora=None)
        backbone.update(gradient_checkpointing=args.grad_ckpt,
                        dtype='bfloat16' if args.amp == 'bfloat16' else 'float32')
        drop_tag_prompts(backbone)  # random images have no tags; the same 77-token UNet pass
    for key in ('decode_head', 'auxiliary_head'):  # SyncBN needs a process group
        head = cfg.model.get(key)
        if isinstance(head, dict) and head.get('norm_cfg', {}).get('type') == 'SyncBN':
            head.norm_cfg.type = 'BN'
    cfg.model.data_preprocessor.size = tuple(args.crop)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model).to(args.device)
    model.init_weights()
    return model.train(), cfg


def random_batch(args, num_classes):
    g = torch.Generator().manual_seed(0)
    h, w = args.crop
    inputs = torch.randn(args.batch, 3, h, w, generator=g).to(args.device)
    samples = []
    for _ in range(args.batch):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w)))
        label = torch.randint(0, num_classes, (1, h, w), generator=g)
        s.gt_sem_seg = PixelData(data=label.to(args.device))
        samples.append(s)
    return inputs, samples


def peak_memory_gib(device):
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_train_steps(model, cfg, args):
    """Median seconds of a training step (after ``args.warmup`` untimed ones)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    inputs, samples = random_batch(args, cfg.model.decode_head.num_classes)
    amp_dtype = getattr(torch, args.amp)
    times = []
    for i in range(args.warmup + args.iters):
        _sync(args.device)
        start = time.perf_counter()
        with torch.autocast(torch.device(args.device).type, dtype=amp_dtype,
                            enabled=args.amp != 'float32'):
            losses = model.loss(inputs, samples)
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(args.device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def window_layout(model, height, width):
    """How the model covers a (height, width) image at test: the RASS backbone's sliding
    windows (``slide_inference``, the authors' inference), else mmseg's ``test_cfg`` (its
    ``slide`` mode's window count), else the whole image."""
    from mmseg_rass.models.backbones.rass_backbone import square_windows
    layout = dict(test_cfg=dict(model.test_cfg))
    if getattr(model.backbone, 'slide_inference', False):
        layout['windows'] = 'backbone slide_inference'
        layout['window_count'] = len(square_windows(height, width))
    elif model.test_cfg.get('mode') == 'slide':
        (ch, cw), (sh, sw) = model.test_cfg['crop_size'], model.test_cfg['stride']
        layout['windows'] = f"mmseg test_cfg {layout['test_cfg']}"
        layout['window_count'] = ((max(height - ch + sh - 1, 0) // sh + 1) *
                                  (max(width - cw + sw - 1, 0) // sw + 1))
    else:
        layout['windows'], layout['window_count'] = 'whole image', 1
    return layout


@torch.no_grad()
def time_inference(model, args):
    """Median seconds of ``test_step`` on a batch of random uint8 images of ``args.crop``."""
    from mmseg.structures import SegDataSample
    model.eval()
    h, w = args.crop
    g = torch.Generator().manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
                        for _ in range(args.batch)],
                data_samples=[SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
                              for _ in range(args.batch)])
    times = []
    for i in range(args.warmup + args.iters):
        _sync(args.device)
        start = time.perf_counter()
        with torch.autocast(torch.device(args.device).type, dtype=getattr(torch, args.amp),
                            enabled=args.amp != 'float32'):
            out = model.test_step(data)
        _sync(args.device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    if tuple(out[0].seg_logits.data.shape[-2:]) != (h, w):
        raise RuntimeError(f'benchmark_rass: test_step returned logits of '
                           f'{tuple(out[0].seg_logits.shape)} for a {h}x{w} image')
    return statistics.median(times)


def main(argv=None):
    args = parse_args(argv)
    model, cfg = build_model(args)
    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    result = dict(config=args.config, device=args.device, crop=tuple(args.crop),
                  batch=args.batch, amp=args.amp, grad_ckpt=args.grad_ckpt)
    if args.infer:
        seconds = time_inference(model, args)
        result.update(mode='inference', infer_s=seconds, images_per_s=args.batch / seconds,
                      **window_layout(model, *args.crop))
    else:
        result.update(mode='train', step_s=time_train_steps(model, cfg, args))
    result.update(peak_gib=peak_memory_gib(args.device), threads=torch.get_num_threads())
    print(' '.join(f'{k}={v:.3f}' if isinstance(v, float) else f'{k}={v}'
                   for k, v in result.items()))
    return result


if __name__ == '__main__':
    run_cli(main)
