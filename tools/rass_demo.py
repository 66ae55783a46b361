"""The RASS method end to end on the demo data: the README's main job (`bash tools/run_demo.sh`).

    python tools/rass_demo.py [--work-dir DIR] [--data-root DIR] [--tiny-sd DIR] [--seed N]
        [--max-iters N] [--num-workers N] [--fps-images N] [--fps-warmup N]
        [--demo-data-options="ARGS"] [--tiny-sd-options="ARGS"]

Stages, each a shipped config run through ``tools/train.py`` (its log in ``<work-dir>/<stage>/``):

1. the demo data (``tools/make_demo_data.py``: kept when up to date, else regenerated);
2. the project's pretrained tiny Stable Diffusion (``tools/pretrain_tiny_sd.py``: reused when its
   content key matches, else built);
3. ``fpn_clean``: FPN-R18 on clean images (``configs/baseline/fpn_r18_demo_cityscapes.py``),
   ``fpn_lq``: FPN-R18 on degraded images (``..._lq.py``);
4. ``scr``: SCR from the tiny SD (``configs/scr/scr_tiny_sd_demo.py``: MSE + L_SCL), its LoRA
   exported with ``tools/export_scr_lora.py``;
5. ``rass``: RASS with that LoRA merged and a fresh segmentation LoRA
   (``configs/rass/rass_tiny_sd_demo.py``); ``rass_noscr``: the same without the SCR LoRA;
6. the RASS paper's Table 1 settings on the degraded val set through the protocol of
   ``tools/lq_protocol.py``: FPN-R18 DT / R2S (SCR restores) / FT, RASS, RASS without SCR.

Every stage's config is a two-line child of the shipped one in ``<work-dir>/configs/`` (the seed,
the data root, the tiny SD folder, the SCR LoRA path; validation left to step 6). Prints one table
and writes ``<work-dir>/rass_demo.json`` / ``.md``; see docs/rass_demo.md.
"""
import argparse
import os
import os.path as osp
import shlex
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmseg_rass.errors import UserError  # noqa: E402
from mmseg_rass.evaluation import lq_protocol  # noqa: E402
from mmseg_rass.evaluation.cells import dump_json  # noqa: E402
from mmseg_rass.models.tiny_sd_pretrain import read_tiny_sd_manifest  # noqa: E402
from mmseg_rass.tools_entry import run_cli  # noqa: E402

FORMAT = 'mmseg_rass.rass_demo.v1'
SCR_LOSSES = ('MSE + L_SCL (LPIPS off: its VGG weights cannot be had here; the reference '
              'trains with MSE + 2·LPIPS + L_SCL)')
# stage -> (shipped config, what the generated child overrides)
STAGES = dict(
    fpn_clean=('configs/baseline/fpn_r18_demo_cityscapes.py', 'segmentor'),
    fpn_lq=('configs/baseline/fpn_r18_demo_cityscapes_lq.py', 'segmentor'),
    scr=('configs/scr/scr_tiny_sd_demo.py', 'scr'),
    rass=('configs/rass/rass_tiny_sd_demo.py', 'rass'),
    rass_noscr=('configs/rass/rass_tiny_sd_noscr_demo.py', 'rass_noscr'),
)
ROW_NAMES = dict(fpn='FPN-R18', rass='RASS', rass_noscr='RASS w/o SCR')


class DemoError(UserError):
    """A stage of the demo failed or its input is unusable (one line naming its log)."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=os.environ.get('WORK_DIR') or 'work_dirs/rass_demo',
                        help='output folder (default: $WORK_DIR or work_dirs/rass_demo)')
    parser.add_argument('--data-root', default=os.environ.get('DEMO_DATA') or
                        'data/demo_cityscapes', help='demo data (default: $DEMO_DATA or '
                        'data/demo_cityscapes; made or refreshed here)')
    parser.add_argument('--tiny-sd', default='data/tiny_sd',
                        help='the pretrained tiny SD folder (made or reused here)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of every training stage (the tiny SD keeps its own, 0)')
    parser.add_argument('--max-iters', type=int,
                        help='train every stage for this many iterations instead of its '
                        'config\'s (for quick checks; the numbers are then not the demo\'s)')
    parser.add_argument('--num-workers', type=int,
                        help='training data-loader workers of every stage (default: the '
                        'configs\' own, 2)')
    parser.add_argument('--fps-images', type=int, default=10,
                        help='images timed for each FPS (default 10)')
    parser.add_argument('--fps-warmup', type=int, default=5,
                        help='untimed images before each FPS measurement (default 5)')
    parser.add_argument('--demo-data-options', type=shlex.split, default=[], metavar='"ARGS"',
                        help='extra tools/make_demo_data.py arguments, one string '
                        '(--demo-data-options="--num-train 4")')
    parser.add_argument('--tiny-sd-options', type=shlex.split, default=[], metavar='"ARGS"',
                        help='extra tools/pretrain_tiny_sd.py arguments, one string '
                        '(--tiny-sd-options="--vae steps=10")')
    return parser.parse_args(argv)


def run_logged(argv, log_path, stage):
    """Run a tool (cwd: the repository), its output into ``log_path``; a failure is one line
    with the log's last lines."""
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    with open(log_path, 'w', encoding='utf-8') as log:
        code = subprocess.call(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if code:
        with open(log_path, encoding='utf-8', errors='replace') as f:
            tail = [line.strip() for line in f.read().splitlines() if line.strip()][-3:]
        raise DemoError(f'stage {stage} failed (exit {code}): {" | ".join(tail)} — the whole '
                        f'output is in {log_path}')


def stage_config(work_dir, stage, args, scr_lora=None):
    """Write the child config of a stage; return its path."""
    base, kind = STAGES[stage]
    lines = [f'_base_ = [{osp.join(ROOT, base)!r}]',
             f'randomness = dict(seed={args.seed})']
    data = f'dataset=dict(data_root={args.data_root!r})'
    if args.num_workers is not None:
        lines.append(f'train_dataloader = dict({data}, num_workers={args.num_workers}, '
                     f'persistent_workers={args.num_workers > 0})')
    else:
        lines.append(f'train_dataloader = dict({data})')
    lines.append(f'test_dataloader = dict({data})')
    # validation happens once, in the protocol (same set, same metric)
    lines += ['val_dataloader = None', 'val_evaluator = None', 'val_cfg = None']
    if args.max_iters:
        lines += [f'train_cfg = dict(max_iters={args.max_iters})',
                  f'default_hooks = dict(checkpoint=dict(interval={args.max_iters}))']
    tiny_sd = args.tiny_sd
    if kind == 'scr':
        lines.append(f'model = dict(pretrained_model_path={tiny_sd!r})')
    elif kind == 'rass':
        lines.append(f'model = dict(backbone=dict(pretrained_model_path={tiny_sd!r}, '
                     f'scr_lora={osp.abspath(scr_lora)!r}))')
    elif kind == 'rass_noscr':
        lines.append(f'model = dict(backbone=dict(pretrained_model_path={tiny_sd!r}))')
    path = osp.join(work_dir, 'configs', f'{stage}.py')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(f'# {stage}: {base} for tools/rass_demo.py\n' + '\n'.join(lines) + '\n')
    return path


def train(stage, config, work_dir, say):
    """``tools/train.py`` of one stage; returns its last checkpoint."""
    stage_dir = osp.join(work_dir, stage)
    start = time.time()
    run_logged([sys.executable, 'tools/train.py', config, '--work-dir', stage_dir],
               osp.join(stage_dir, 'train.log'), stage)
    with open(osp.join(stage_dir, 'last_checkpoint'), encoding='utf-8') as f:
        checkpoint = f.read().strip()
    seconds = round(time.time() - start, 1)
    say(f'[demo] {stage}: trained in {seconds:.0f} s -> {checkpoint}')
    return checkpoint, seconds


def protocol_rows(configs, checkpoints, scr_lora):
    """The comparison rows of the RASS paper's Table 1 on the demo."""
    Row = lq_protocol.Row
    return [
        Row(name=ROW_NAMES['fpn'], config=configs['fpn_clean'],
            checkpoint=checkpoints['fpn_clean'], restorer_config=configs['scr'],
            restorer_checkpoint=scr_lora, ft_config=configs['fpn_lq'],
            ft_checkpoint=checkpoints['fpn_lq']),
        Row(name=ROW_NAMES['rass'], ft_config=configs['rass'], ft_checkpoint=checkpoints['rass']),
        Row(name=ROW_NAMES['rass_noscr'], ft_config=configs['rass_noscr'],
            ft_checkpoint=checkpoints['rass_noscr']),
    ]


def headline(summary, tiny_sd):
    """The issue's named numbers from the protocol's summary (``summary[row]['demo']``)."""
    fpn, rass, noscr = (summary[ROW_NAMES[k]]['demo'] for k in ('fpn', 'rass', 'rass_noscr'))
    return dict(vae_psnr=tiny_sd['metrics']['vae_psnr_val'], lq_psnr=fpn['lq_psnr'],
                lq_ssim=fpn['lq_ssim'], scr_psnr=fpn['restored_psnr'],
                scr_ssim=fpn['restored_ssim'], dt_miou=fpn['dt_miou'], r2s_miou=fpn['r2s_miou'],
                ft_miou=fpn['ft_miou'], rass_miou=rass['ft_miou'],
                rass_noscr_miou=noscr['ft_miou'])


def format_table(n):
    """Markdown of a result: mIoU on the degraded val set per row and setting, then
    restoration."""
    rows = [
        '| row | setting | mIoU (LQ val) |', '|---|---|---|',
        f'| FPN-R18 | DT: trained on clean images | {n["dt_miou"]:.2f} |',
        f'| FPN-R18 | R2S: SCR restores, the clean-trained FPN segments | {n["r2s_miou"]:.2f} |',
        f'| FPN-R18 | FT: trained on degraded images | {n["ft_miou"]:.2f} |',
        f'| RASS | SCR LoRA merged + segmentation LoRA | {n["rass_miou"]:.2f} |',
        f'| RASS w/o SCR | plain tiny SD + segmentation LoRA | {n["rass_noscr_miou"]:.2f} |',
        '', '| images (LQ val) | PSNR (dB) | SSIM |', '|---|---|---|',
        f'| degraded input | {n["lq_psnr"]:.2f} | {n["lq_ssim"]:.4f} |',
        f'| SCR restored | {n["scr_psnr"]:.2f} | {n["scr_ssim"]:.4f} |',
        '', f'Tiny SD VAE reconstruction of the clean val images: {n["vae_psnr"]:.2f} dB. '
        f'SCR losses: {n["scr_losses"]}. Seed {n["seed"]}; wall time '
        f'{n["wall_seconds"]:.0f} s on {n["device"]}.',
    ]
    return '\n'.join(rows) + '\n'


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    # the tools run from the repository root: paths given relative to here are made absolute
    args.data_root, args.tiny_sd = osp.abspath(args.data_root), osp.abspath(args.tiny_sd)
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    say = lambda line: print(line, flush=True)  # noqa: E731
    py = sys.executable
    seconds = {}

    t = time.time()
    run_logged([py, 'tools/make_demo_data.py', '--out', args.data_root,
                *args.demo_data_options], osp.join(work_dir, 'logs', 'demo_data.log'),
               'demo_data')
    seconds['demo_data'] = round(time.time() - t, 1)
    t = time.time()
    run_logged([py, 'tools/pretrain_tiny_sd.py', '--data-root', args.data_root, '--out',
                args.tiny_sd, *args.tiny_sd_options],
               osp.join(work_dir, 'logs', 'tiny_sd.log'), 'tiny_sd')
    seconds['tiny_sd'] = round(time.time() - t, 1)
    tiny_sd = read_tiny_sd_manifest(args.tiny_sd)
    say(f'[demo] data {args.data_root} ({seconds["demo_data"]:.0f} s); tiny SD {args.tiny_sd}: '
        f'VAE {tiny_sd["metrics"]["vae_psnr_val"]:.2f} dB on the clean val images '
        f'({seconds["tiny_sd"]:.0f} s; key {tiny_sd["key"][:12]})')

    configs, checkpoints = {}, {}
    for stage in ('fpn_clean', 'fpn_lq', 'scr'):
        configs[stage] = stage_config(work_dir, stage, args)
        checkpoints[stage], seconds[stage] = train(stage, configs[stage], work_dir, say)
    scr_lora = osp.join(work_dir, 'scr', 'scr_lora.safetensors')
    run_logged([py, 'tools/export_scr_lora.py', checkpoints['scr'], scr_lora],
               osp.join(work_dir, 'scr', 'export.log'), 'scr_export')
    say(f'[demo] scr: LoRA exported to {scr_lora} (losses: {SCR_LOSSES})')
    for stage in ('rass', 'rass_noscr'):
        configs[stage] = stage_config(work_dir, stage, args, scr_lora=scr_lora)
        checkpoints[stage], seconds[stage] = train(stage, configs[stage], work_dir, say)

    t = time.time()
    protocol_dir = osp.join(work_dir, 'lq_protocol')
    protocol = lq_protocol.run_protocol(
        protocol_rows(configs, checkpoints, scr_lora),
        [lq_protocol.EvalSet('demo', data_root=args.data_root,
                             cfg_options={'test_dataloader.num_workers': 0,
                                          'test_dataloader.persistent_workers': False})],
        protocol_dir, fps_warmup=args.fps_warmup, fps_images=args.fps_images,
        say=print)
    seconds['protocol'] = round(time.time() - t, 1)

    result = dict(format=FORMAT, **headline(protocol['summary'], tiny_sd),
                  wall_seconds=round(time.time() - start, 1), stage_seconds=seconds,
                  seed=args.seed, max_iters=args.max_iters, device=protocol['device'],
                  scr_losses=SCR_LOSSES, data_root=args.data_root,
                  tiny_sd=dict(path=args.tiny_sd, key=tiny_sd['key'],
                               scaling_factor=tiny_sd['metrics']['scaling_factor']),
                  configs=configs, checkpoints=checkpoints, scr_lora=scr_lora,
                  protocol=osp.join(protocol_dir, 'lq_protocol.json'))
    dump_json(result, osp.join(work_dir, 'rass_demo.json'))
    table = format_table(result)
    with open(osp.join(work_dir, 'rass_demo.md'), 'w', encoding='utf-8') as f:
        f.write(table)
    say('\n' + table)
    say(f'[demo] tools/rass_demo.py: mIoU: {result["rass_miou"]:.2f} (RASS on the degraded val '
        f'set) — the whole pipeline in {result["wall_seconds"]:.0f} s; '
        f'{osp.join(work_dir, "rass_demo.json")}')
    return result


if __name__ == '__main__':
    run_cli(main)
