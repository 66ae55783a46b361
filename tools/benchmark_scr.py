"""SCR restorer benchmark at SD2.1-base size.

    python tools/benchmark_scr.py params                       # any machine: meta device
    python tools/benchmark_scr.py step [--batch 4] [--size 512] [--steps 10] [--no-scl]
                                       [--no-lpips] [--vsd]    # CUDA: bf16 training step

``params`` builds the SD2.1-base UNet / VAE / text encoder (architecture only, ``meta`` device,
no weights) with the SCR adapters and counts trainable vs total parameters. ``step`` builds the
same architecture with random weights on the GPU and times full training steps (bf16 autocast,
AdamW on the adapters + conv_in, MSE + 2·LPIPS(VGG16, random weights: timing only) + L_SCL,
optionally VSD) with and without UNet gradient checkpointing, reporting the mean step time and
peak allocated memory. Results go to stdout as a table. :func:`step_rows` is the measurement
(any architecture and device; on the CPU bf16 runs under ``torch.autocast``), used by
``tools/gpu_check.py`` too.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

import mmseg_rass  # noqa: E402,F401


def build_restorer(device, gradient_checkpointing=False, scl=True, lpips_path=None,
                   vsd=False, arch='sd21'):
    """SCRRestorer with the ``arch`` architecture (random init; SD2.1-base by default) on
    ``device``."""
    from mmseg.registry import MODELS
    with torch.device(device):
        return MODELS.build(
            dict(type='SCRRestorer', arch=arch, class_names='CityscapesDataset',
                 scl_loss=dict(type='SCLLoss') if scl else None,
                 lpips_weight=2.0 if lpips_path else 0, lpips_path=lpips_path,
                 vsd=dict() if vsd else None,
                 gradient_checkpointing=gradient_checkpointing))


def random_vgg16_file(folder):
    """torchvision's VGG16 layout with random weights (LPIPS cost without the real weights)."""
    import torchvision
    path = osp.join(folder, 'vgg16_random.pth')
    torch.save(torchvision.models.vgg16().state_dict(), path)
    return path


def count_params(_args):
    model = build_restorer('meta')
    parts = {'UNet (with LoRA)': model.unet, 'VAE': model.vae, 'text encoder': model.text_encoder}
    rows = []
    for name, part in parts.items():
        total = sum(p.numel() for p in part.parameters())
        trainable = sum(p.numel() for p in part.parameters() if p.requires_grad)
        rows.append((name, trainable, total))
    lora = sum(p.numel() for n, p in model.unet.named_parameters() if 'lora_' in n)
    vae_lora = sum(p.numel() for n, p in model.vae.named_parameters() if 'lora_' in n)
    conv_in = sum(p.numel() for n, p in model.named_parameters()
                  if p.requires_grad and 'lora_' not in n)
    rows.append(('total', lora + vae_lora + conv_in, sum(r[2] for r in rows)))
    print('| part | trainable | total |\n|---|---:|---:|')
    for name, trainable, total in rows:
        print(f'| {name} | {trainable / 1e6:.3f}M | {total / 1e6:.1f}M |')
    print(f'\nUNet LoRA {lora / 1e6:.3f}M + VAE-encoder LoRA {vae_lora / 1e6:.3f}M + conv_in '
          f'{conv_in / 1e6:.4f}M; trainable share {100 * rows[-1][1] / rows[-1][2]:.2f}%')


def random_batch(batch, size):
    """``batch`` random uint8 LQ/HQ images of ``size``² (a multiple of 64) with 4 classes of
    Cityscapes (0, 3, 6, 9) in 64-pixel blocks, packed as the SCR pipeline does."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(size, size)))
        sample.gt_hq_img = PixelData(
            data=torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8))
        labels = torch.randint(0, 4, (size // 64, size // 64), generator=gen) * 3  # 4 classes
        labels = labels.repeat_interleave(64, 0).repeat_interleave(64, 1)
        sample.gt_sem_seg = PixelData(data=labels[None])
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
              for _ in range(batch)]
    return dict(inputs=inputs, data_samples=samples)


def step_rows(device='cuda', arch='sd21', batch=4, size=512, steps=10, warmup=3, scl=True,
              lpips=True, vsd=False):
    """Mean bf16 training-step time and peak memory without and with gradient checkpointing.

    On CUDA the step runs as the configs train (``AmpOptimWrapper``, bf16) and the peak is
    ``torch.cuda.max_memory_allocated``; on the CPU under ``torch.autocast(bfloat16)`` with a
    plain ``OptimWrapper`` (mmengine's AMP wrapper needs a GPU) and no peak.

    Returns:
        list[dict]: per setting ``gradient_checkpointing``, ``step_s`` and ``peak_gib``
        (None on the CPU, or both None when the step ran out of memory).
    """
    import contextlib
    import tempfile

    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    cuda = torch.device(device).type == 'cuda'
    lpips_path = random_vgg16_file(tempfile.mkdtemp(prefix='benchmark_scr_')) if lpips else None
    data = random_batch(batch, size)
    rows = []
    for checkpointing in (False, True):
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = build_restorer(device, checkpointing, scl=scl, lpips_path=lpips_path, vsd=vsd,
                               arch=arch).train()
        params = [p for p in model.parameters() if p.requires_grad]
        optim = (AmpOptimWrapper(optimizer=torch.optim.AdamW(params, lr=5e-5), dtype='bfloat16')
                 if cuda else OptimWrapper(torch.optim.AdamW(params, lr=5e-5)))
        amp = (contextlib.nullcontext() if cuda else
               torch.autocast(torch.device(device).type, dtype=torch.bfloat16))
        row = dict(gradient_checkpointing=checkpointing, step_s=None, peak_gib=None)
        try:
            with amp:
                for _ in range(warmup):
                    model.train_step(data, optim)
                _sync(device)
                start = time.perf_counter()
                for _ in range(steps):
                    model.train_step(data, optim)
                _sync(device)
            row['step_s'] = (time.perf_counter() - start) / steps
            row['peak_gib'] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        except torch.cuda.OutOfMemoryError:
            row['out_of_memory'] = True
        rows.append(row)
        del model, optim
    return rows


def _sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def time_steps(args):
    if not torch.cuda.is_available():
        raise SystemExit('benchmark_scr.py step needs a CUDA GPU (none found); '
                         '`params` runs anywhere')
    print(f'GPU: {torch.cuda.get_device_name()} | batch {args.batch} | {args.size}² | bf16 '
          f'autocast | L_SCL {"off" if args.no_scl else "on"} | LPIPS '
          f'{"off" if args.no_lpips else "on"} | VSD {"on" if args.vsd else "off"}')
    print('| gradient checkpointing | step time (s) | peak memory (GiB) |\n|---|---:|---:|')
    for row in step_rows('cuda', 'sd21', args.batch, args.size, args.steps, args.warmup,
                         scl=not args.no_scl, lpips=not args.no_lpips, vsd=args.vsd):
        ckpt = 'on' if row['gradient_checkpointing'] else 'off'
        print(f'| {ckpt} | out of memory | - |' if row['step_s'] is None else
              f'| {ckpt} | {row["step_s"]:.3f} | {row["peak_gib"]:.1f} |')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('params', help='trainable vs total parameters (meta device)')
    step = sub.add_parser('step', help='training step time and peak memory (CUDA)')
    step.add_argument('--batch', type=int, default=4)
    step.add_argument('--size', type=int, default=512)
    step.add_argument('--steps', type=int, default=10)
    step.add_argument('--warmup', type=int, default=3)
    step.add_argument('--no-scl', action='store_true', help='without L_SCL (fused attention)')
    step.add_argument('--no-lpips', action='store_true', help='without the LPIPS loss')
    step.add_argument('--vsd', action='store_true', help='with OSEDiff\'s VSD loss')
    args = parser.parse_args(argv)
    {'params': count_params, 'step': time_steps}[args.command](args)


if __name__ == '__main__':
    main()
