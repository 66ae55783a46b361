"""SCR restorer benchmark at SD2.1-base size.

    python tools/benchmark_scr.py params                       # any machine: meta device
    python tools/benchmark_scr.py step [--batch 4] [--size 512] [--steps 10] [--no-scl]
                                       [--no-lpips] [--vsd]    # CUDA: bf16 training step

``params`` builds the SD2.1-base UNet / VAE / text encoder (architecture only, ``meta`` device,
no weights) with the SCR adapters and counts trainable vs total parameters. ``step`` builds the
same architecture with random weights on the GPU and times full training steps (bf16 autocast,
AdamW on the adapters + conv_in, MSE + 2·LPIPS(VGG16, random weights: timing only) + L_SCL,
optionally VSD) with and without UNet gradient checkpointing, reporting the mean step time and
peak allocated memory. Results go to stdout as a table.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

import mmseg_rass  # noqa: E402,F401


def build_sd21_restorer(device, gradient_checkpointing=False, scl=True, lpips_path=None,
                        vsd=False):
    """SCRRestorer with the SD2.1-base architecture (random init) on ``device``."""
    from mmseg.registry import MODELS
    with torch.device(device):
        return MODELS.build(
            dict(type='SCRRestorer', arch='sd21', class_names='CityscapesDataset',
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
    model = build_sd21_restorer('meta')
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


def _batch(batch, size):
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


def time_steps(args):
    from mmengine.optim import AmpOptimWrapper
    if not torch.cuda.is_available():
        raise SystemExit('benchmark_scr.py step needs a CUDA GPU (none found); '
                         '`params` runs anywhere')
    import tempfile
    print(f'GPU: {torch.cuda.get_device_name()} | batch {args.batch} | {args.size}² | bf16 '
          f'autocast | L_SCL {"off" if args.no_scl else "on"} | LPIPS '
          f'{"off" if args.no_lpips else "on"} | VSD {"on" if args.vsd else "off"}')
    folder = tempfile.mkdtemp(prefix='benchmark_scr_')
    lpips_path = None if args.no_lpips else random_vgg16_file(folder)
    print('| gradient checkpointing | step time (s) | peak memory (GiB) |\n|---|---:|---:|')
    for checkpointing in (False, True):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model = build_sd21_restorer('cuda', checkpointing, scl=not args.no_scl,
                                    lpips_path=lpips_path, vsd=args.vsd)
        model.train()
        optim = AmpOptimWrapper(
            optimizer=torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                        lr=5e-5), dtype='bfloat16')
        data = _batch(args.batch, args.size)
        try:
            for _ in range(args.warmup):
                model.train_step(data, optim)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_step(data, optim)
            torch.cuda.synchronize()
            step = (time.perf_counter() - start) / args.steps
            peak = torch.cuda.max_memory_allocated() / 2**30
            print(f'| {"on" if checkpointing else "off"} | {step:.3f} | {peak:.1f} |')
        except torch.cuda.OutOfMemoryError:
            print(f'| {"on" if checkpointing else "off"} | out of memory | - |')
        del model, optim
        sys.stdout.flush()


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
