"""SegSR speed: training step and per-image sampling time vs the number of reverse steps.

    python tools/benchmark_segsr.py cpu [--steps 1 2 4 8 20] [--iters 5]   # tiny demo model, CPU
    python tools/benchmark_segsr.py gpu [--batch 2] [--size 512]           # SD2.1-base size, CUDA

``cpu`` builds the model of ``configs/segsr/segsr_tiny_demo.py`` with and without the bridge and
times a full training step (batch 2, 128×256 crops: forward, backward, AdamW) and the joint
reverse process on one 256×512 image for each step count. ``gpu`` builds the SD2.1-base
configuration (``configs/segsr/segsr_sd21_cityscapes_lq.py`` architecture, random weights, no
files needed) on the GPU and times bf16-autocast training steps (batch ``--batch``,
``--size``² crops) with peak memory, and sampling at 4 and 20 steps. Means over ``--iters``
after one warm-up; Markdown tables on stdout.
"""
import argparse
import contextlib
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402

import mmseg_rass  # noqa: E402,F401
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = osp.join(ROOT, 'configs/segsr/segsr_tiny_demo.py')
SD21 = osp.join(ROOT, 'configs/segsr/segsr_sd21_cityscapes_lq.py')


def build(config, device, **model_overrides):
    """The SegSR model of ``config`` (an SD folder replaced by the SD2.1 architecture)."""
    cfg = Config.fromfile(config)
    init_default_scope('mmseg')
    model_cfg = cfg.model
    if model_cfg.srdm.get('pretrained_model_path'):
        model_cfg.srdm.pop('pretrained_model_path')
        model_cfg.srdm['arch'] = 'sd21'
    model_cfg.backbone.pop('init_cfg', None)
    model_cfg.update(model_overrides)
    if device == 'cuda':  # SyncBN needs a process group
        model_cfg.segdm.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    model = MODELS.build(model_cfg).to(device)
    model.init_weights()
    return model


def batch(n, height, width, num_classes, seed=0):
    """Random uint8 LQ/HQ images and labels, packed as the pipeline does."""
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(height, width), ori_shape=(height, width)))
        sample.gt_hq_img = PixelData(
            data=torch.randint(0, 256, (3, height, width), generator=gen, dtype=torch.uint8))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, height, width), generator=gen))
        samples.append(sample)
        inputs.append(torch.randint(0, 256, (3, height, width), generator=gen, dtype=torch.uint8))
    return dict(inputs=inputs, data_samples=samples)


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def time_train_step(model, data, iters, device, amp_dtype=None):
    """Mean seconds of forward + backward + AdamW step (one warm-up first)."""
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    amp = (torch.autocast(device, dtype=amp_dtype) if amp_dtype is not None else
           contextlib.nullcontext())
    times = []
    for i in range(iters + 1):
        _sync(device)
        start = time.perf_counter()
        prepared = model.data_preprocessor(data, True)
        with amp:
            losses = model.loss(**prepared)
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        loss.backward()
        optim.step()
        _sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return sum(times) / len(times)


@torch.no_grad()
def time_sampling(model, image, steps, iters, device, amp_dtype=None):
    """Mean seconds of the joint reverse process on one image (one warm-up first)."""
    model.eval()
    amp = (torch.autocast(device, dtype=amp_dtype) if amp_dtype is not None else
           contextlib.nullcontext())
    times = []
    for i in range(iters + 1):
        _sync(device)
        start = time.perf_counter()
        with amp:
            model.sample(image, num_steps=steps)
        _sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def run_cpu(args):
    print(f'CPU, {torch.get_num_threads()} torch thread(s); tiny demo model '
          f'({osp.relpath(TINY, ROOT)})\n')
    models = {'bridge on': build(TINY, 'cpu'), 'bridge off': build(TINY, 'cpu', bridge=False)}
    data = batch(2, 128, 256, models['bridge on'].num_classes)
    print('| model | train step, batch 2, 128×256 (s) |\n|---|---:|')
    for name, model in models.items():
        print(f'| {name} | {time_train_step(model, data, args.iters, "cpu"):.3f} |')
    image = torch.rand(1, 3, 256, 512) * 2 - 1
    print('\n| reverse steps | ' + ' | '.join(f'{n} (s / 256×512 image)' for n in models) +
          ' |\n|---:|' + '---:|' * len(models))
    for steps in args.steps:
        cells = [time_sampling(m, image, steps, args.iters, 'cpu') for m in models.values()]
        print(f'| {steps} | ' + ' | '.join(f'{c:.3f}' for c in cells) + ' |')


def train_and_sample_times(config=SD21, device='cuda', batch_size=2, size=512, iters=3,
                 steps=(4, 20), amp_dtype=torch.bfloat16):
    """Training step (s, with peak GiB on CUDA) and per-image sampling time per step count of
    ``config``'s model (SD2.1-base by default) on ``device`` under ``amp_dtype`` autocast."""
    model = build(config, device)
    data = batch(batch_size, size, size, model.num_classes)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    step = time_train_step(model, data, iters, device, amp_dtype)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == 'cuda' else None
    image = torch.rand(1, 3, size, size, device=device) * 2 - 1
    sampling = {n: time_sampling(model, image, n, iters, device, amp_dtype) for n in steps}
    return dict(train_step_s=step, peak_gib=peak, sampling_s=sampling)


def run_gpu(args):
    if not torch.cuda.is_available():
        raise SystemExit('benchmark_segsr.py gpu needs a CUDA GPU (none found); `cpu` runs '
                         'anywhere')
    print(f'GPU: {torch.cuda.get_device_name()} | SD2.1-base SRDM (LoRA) + MiT-B2 SegDM + DMB | '
          f'batch {args.batch} | {args.size}² | bf16 autocast\n')
    out = train_and_sample_times(SD21, 'cuda', args.batch, args.size, args.iters)
    print(f'| train step (s) | peak memory (GiB) |\n|---:|---:|\n| {out["train_step_s"]:.3f} | '
          f'{out["peak_gib"]:.1f} |\n')
    print('| reverse steps | sampling (s / image) |\n|---:|---:|')
    for steps, seconds in out['sampling_s'].items():
        print(f'| {steps} | {seconds:.3f} |')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mode', choices=['cpu', 'gpu'])
    parser.add_argument('--steps', type=int, nargs='+', default=[1, 2, 4, 8, 20],
                        help='reverse step counts to time (cpu)')
    parser.add_argument('--iters', type=int, default=3, help='timed repetitions')
    parser.add_argument('--batch', type=int, default=2, help='training batch (gpu)')
    parser.add_argument('--size', type=int, default=512, help='crop size (gpu)')
    args = parser.parse_args(argv)
    run_cpu(args) if args.mode == 'cpu' else run_gpu(args)


if __name__ == '__main__':
    main()
