"""SegSR mutual refinement: mIoU and PSNR after each reverse step, for one or more models.

Runs the joint reverse process of each SegSR model on its config's test set and measures, after
every step k, the mIoU of SegDM's logits and the PSNR/SSIM of SRDM's decoded clean-latent
estimate ẑ0; the last row is the final output (the decoded last latent, what ``tools/test.py``
reports). Writes a Markdown table, a JSON file and a PNG plot to ``--out-dir``.

    python tools/segsr_refinement.py --out-dir work_dirs/segsr_refinement \\
        --model bridge-on configs/segsr/segsr_tiny_demo.py work_dirs/segsr_tiny_demo/iter_400.pth \\
        --model bridge-off configs/segsr/segsr_tiny_demo_nobridge.py \\
            work_dirs/segsr_tiny_demo_nobridge/iter_400.pth
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmseg_rass  # noqa: E402,F401  (applies compat, registers components)
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner, load_checkpoint  # noqa: E402
from mmseg.evaluation import IoUMetric  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from mmseg_rass.errors import (CheckpointNotFoundError, ConfigError,  # noqa: E402
                               InputNotFoundError, ParameterError)
from mmseg_rass.evaluation.restoration_metric import psnr, ssim  # noqa: E402
from mmseg_rass.tools_entry import (add_trust_checkpoint_argument,  # noqa: E402
                                    apply_trust_checkpoint, is_url, run_cli)
from mmseg_rass.models.restorers.scr_data_preprocessor import to_uint8_range  # noqa: E402


class _Curve:
    """Per-step accumulators: IoU areas and PSNR/SSIM sums."""

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.areas = {}
        self.quality = {}

    def add_seg(self, key, pred, label, ignore_index):
        areas = IoUMetric.intersect_and_union(pred, label, self.num_classes, ignore_index)
        old = self.areas.get(key)
        self.areas[key] = [a.double() for a in areas] if old is None else [
            o + a.double() for o, a in zip(old, areas)]

    def add_img(self, key, pred, target):
        sums = self.quality.setdefault(key, [0.0, 0.0, 0])
        sums[0] += psnr(pred.float(), target.float())
        sums[1] += ssim(pred.float(), target.float())
        sums[2] += 1

    def miou(self, key):
        inter, union = self.areas[key][0], self.areas[key][1]
        iou = inter / union
        return 100 * float(iou[union > 0].mean())

    def psnr_ssim(self, key):
        total_psnr, total_ssim, count = self.quality[key]
        return total_psnr / count, total_ssim / count


def evaluate(name, config, checkpoint, num_steps, cfg_options=None, max_images=None):
    """Per-step mIoU / PSNR / SSIM of one SegSR model on its test set.

    Returns:
        dict: ``name``, ``bridge`` (bool), ``timesteps``, ``rows`` (one per step, then
        ``final``), ``lq_psnr`` / ``lq_ssim`` (the LQ input, bicubically upsampled to the
        output size when ``model.scale`` > 1, against the HQ image).
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    if type(model).__name__ != 'SegSR':
        raise ConfigError(f'{config} builds {type(model).__name__}, not SegSR: pass a SegSR '
                          'config (configs/segsr/)')
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    model.eval()
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg)
    num_steps = num_steps or model.num_steps
    curve = _Curve(model.num_classes)
    ignore_index = model.segdm.ignore_index
    timesteps = None
    for index, batch in enumerate(loader):
        if max_images is not None and index >= max_images:
            break
        data = model.data_preprocessor(batch, False)
        inputs, samples = data['inputs'], data['data_samples']
        for sample in samples:
            if 'gt_sem_seg' not in sample or 'gt_hq_img' not in sample:
                raise ConfigError(f'the test pipeline of {config} must load annotations and '
                                  'keep the HQ image (Degrade(keep_hq=True) + '
                                  'PackRestorationInputs)')
        scale = model.scale  # x4: outputs at 4 x the LQ input, which is bicubically upsampled
        with torch.no_grad():
            out = model.sample(inputs, num_steps=num_steps, return_steps=True)
            steps = out['steps']
            timesteps = [s['timestep'] for s in steps]
            size = (scale * inputs.shape[-2], scale * inputs.shape[-1])
            stages = [(f'step {k + 1}', s['seg_logits'], model.decode_latent(s['latent0'], *size))
                      for k, s in enumerate(steps)]
            stages.append(('final', out['seg_logits'], out['restored']))
        for key, logits, restored in stages:
            preds = model.postprocess_result(logits, copy.deepcopy(samples))
            for i, (pred, sample) in enumerate(zip(preds, samples)):
                h, w = (scale * n for n in sample.img_shape)
                curve.add_seg(key, pred.pred_sem_seg.data[0].cpu(),
                              sample.gt_sem_seg.data[0].cpu(), ignore_index)
                curve.add_img(key, to_uint8_range(restored[i, :, :h, :w]).cpu(),
                              sample.gt_hq_img.data.cpu())
        upsampled = model.upsample(inputs)  # the LQ input as the model sees it
        for i, sample in enumerate(samples):
            h, w = (scale * n for n in sample.img_shape)
            curve.add_img('lq', to_uint8_range(upsampled[i, :, :h, :w]).cpu(),
                          sample.gt_hq_img.data.cpu())
    rows = []
    for key in [f'step {k + 1}' for k in range(len(timesteps))] + ['final']:
        p, s = curve.psnr_ssim(key)
        rows.append(dict(stage=key, mIoU=curve.miou(key), PSNR=p, SSIM=s))
    lq_psnr, lq_ssim = curve.psnr_ssim('lq')
    return dict(name=name, config=config, checkpoint=checkpoint, bridge=model.bridge is not None,
                timesteps=timesteps, rows=rows, lq_psnr=lq_psnr, lq_ssim=lq_ssim)


def markdown(results):
    """One table: a row per stage, mIoU / PSNR / SSIM columns per model."""
    head = '| stage | t |' + ''.join(f' {r["name"]} mIoU | {r["name"]} PSNR | {r["name"]} SSIM |'
                                    for r in results)
    lines = [head, '|---|---:|' + '---:|---:|---:|' * len(results)]
    timesteps = results[0]['timesteps']
    for k, row in enumerate(results[0]['rows']):
        t = timesteps[k] if k < len(timesteps) else '0 (decoded z)'
        cells = ''.join(f' {r["rows"][k]["mIoU"]:.2f} | {r["rows"][k]["PSNR"]:.2f} | '
                        f'{r["rows"][k]["SSIM"]:.4f} |' for r in results)
        lines.append(f'| {row["stage"]} | {t} |{cells}')
    lines.append('| LQ input | – |' + ''.join(f' – | {r["lq_psnr"]:.2f} | {r["lq_ssim"]:.4f} |'
                                              for r in results))
    return '\n'.join(lines) + '\n'


def plot(results, path):
    """mIoU and PSNR against the reverse step, one line per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for res in results:
        steps = range(1, len(res['timesteps']) + 1)
        rows = res['rows'][:len(res['timesteps'])]
        axes[0].plot(steps, [r['mIoU'] for r in rows], marker='o', label=res['name'])
        axes[1].plot(steps, [r['PSNR'] for r in rows], marker='o', label=res['name'])
    axes[1].axhline(results[0]['lq_psnr'], color='gray', linestyle='--', label='LQ input')
    for ax, what in zip(axes, ('mIoU (%)', 'PSNR of decoded ẑ0 (dB)')):
        ax.set_xticks(range(1, len(results[0]['timesteps']) + 1))
        ax.set_xlabel('reverse step')
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', nargs=3, action='append', required=True,
                        metavar=('NAME', 'CONFIG', 'CHECKPOINT'), help='a SegSR model (repeat)')
    parser.add_argument('--out-dir', required=True, help='where the table/plot/JSON go')
    parser.add_argument('--num-steps', type=int, default=None,
                        help='reverse steps (default: each model\'s num_steps)')
    parser.add_argument('--max-images', type=int, default=None, help='first N test images only')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override entries of every config, as in tools/test.py')
    add_trust_checkpoint_argument(parser)
    args = parser.parse_args(argv)
    apply_trust_checkpoint(args.trust_checkpoint)
    for _, config, checkpoint in args.model:
        if not osp.isfile(config):
            raise InputNotFoundError(f'config file {config} does not exist')
        if not osp.isfile(checkpoint) and not is_url(checkpoint):
            raise CheckpointNotFoundError(f'checkpoint file {checkpoint} does not exist')
    results = [evaluate(name, config, ckpt, args.num_steps, args.cfg_options, args.max_images)
               for name, config, ckpt in args.model]
    if len({tuple(r['timesteps']) for r in results}) != 1:
        raise ParameterError('the models sample different timesteps: pass --num-steps')
    os.makedirs(args.out_dir, exist_ok=True)
    table = markdown(results)
    with open(osp.join(args.out_dir, 'refinement.md'), 'w', encoding='utf-8') as f:
        f.write(table)
    with open(osp.join(args.out_dir, 'refinement.json'), 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=2)
    plot(results, osp.join(args.out_dir, 'refinement.png'))
    print(table)
    return results


if __name__ == '__main__':
    run_cli(main)
