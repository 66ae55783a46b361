"""The main job's table over several seeds (mean ± std) and the RASS paper's claims checked on it.

    python tools/benchmark_rass_demo.py [--seeds 0 1 2] [--work-dir work_dirs/rass_demo_seeds]
        [--rass-demo-options="--data-root DIR ..."]
    python tools/benchmark_rass_demo.py --results A/rass_demo.json B/rass_demo.json ...

Runs ``tools/rass_demo.py --seed S`` for every seed (``<work-dir>/seed_S``; its output in
``seed_S.log``), or reads finished ``rass_demo.json`` files, which must share every setting but
the seed (data, tiny SD, iteration counts). Writes ``<work-dir>/rass_demo_seeds.json`` / ``.md``:
every seed's numbers, mean ± sample std, and for each claim the paper makes that the table can
test the per-seed differences and a verdict (holds in every seed / in some / in none).
"""
import argparse
import os
import os.path as osp
import re
import shlex
import statistics
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmseg_rass.errors import UserError  # noqa: E402
from mmseg_rass.evaluation.cells import dump_json, read_result  # noqa: E402
from mmseg_rass.tools_entry import run_cli  # noqa: E402

RUN_FORMAT = 'mmseg_rass.rass_demo.v1'  # tools/rass_demo.py's FORMAT
NUMBERS = ('vae_psnr', 'lq_psnr', 'scr_psnr', 'lq_ssim', 'scr_ssim', 'dt_miou', 'r2s_miou',
           'ft_miou', 'rass_miou', 'rass_noscr_miou', 'wall_seconds')
# claim -> (better, worse): the claim holds in a seed where better > worse
CLAIMS = {
    'SCR restores better than the LQ input (PSNR)': ('scr_psnr', 'lq_psnr'),
    'RASS beats FT (a conventional segmentor fine-tuned on LQ)': ('rass_miou', 'ft_miou'),
    'RASS beats R2S (restore with SCR, then the clean-trained segmentor)':
        ('rass_miou', 'r2s_miou'),
    'RASS with the SCR LoRA beats RASS without it': ('rass_miou', 'rass_noscr_miou'),
}
# what must agree between the runs of one table (and the device, see device_kind)
SAME = ('data_root', 'max_iters', 'scr_losses')


def device_kind(device):
    """The device without its CPU thread count: the thread count changes the order of float
    reductions (last bits, which training amplifies as it would another seed's), not the
    experiment, so runs on 1 and 2 CPU threads share a table."""
    return re.sub(r', \d+ threads\)$', ')', device)


class SeedsError(UserError):
    """Runs that cannot share a table, or a run that failed (one line)."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/rass_demo_seeds')
    parser.add_argument('--rass-demo-options', type=shlex.split, default=[], metavar='"ARGS"',
                        help='extra tools/rass_demo.py arguments, one string')
    parser.add_argument('--results', nargs='+', metavar='JSON',
                        help='aggregate these rass_demo.json files instead of running')
    return parser.parse_args(argv)


def run_seed(seed, work_dir, options):
    """``tools/rass_demo.py --seed`` into ``<work_dir>/seed_<seed>``; returns its JSON path."""
    out = osp.join(work_dir, f'seed_{seed}')
    log = osp.join(work_dir, f'seed_{seed}.log')
    print(f'[seeds] seed {seed}: tools/rass_demo.py -> {out} (output in {log})', flush=True)
    with open(log, 'w', encoding='utf-8') as f:
        code = subprocess.call([sys.executable, 'tools/rass_demo.py', '--seed', str(seed),
                                '--work-dir', out, *options], cwd=ROOT, stdout=f,
                               stderr=subprocess.STDOUT)
    if code:
        raise SeedsError(f'tools/rass_demo.py --seed {seed} failed (exit {code}): see {log}')
    return osp.join(out, 'rass_demo.json')


def load_runs(paths):
    """The runs, checked to differ only in their seed."""
    runs = []
    for path in paths:
        run = read_result(path, RUN_FORMAT, 'rass_demo.json', 'tools/rass_demo.py')
        runs.append(dict(run, path=path))
    first = runs[0]
    for run in runs[1:]:
        differ = [k for k in SAME if run.get(k) != first.get(k)]
        if device_kind(run['device']) != device_kind(first['device']):
            differ.append('device')
        if run['tiny_sd']['key'] != first['tiny_sd']['key']:
            differ.append('tiny_sd.key')
        if differ:
            raise SeedsError(f'{run["path"]} and {first["path"]} differ in {differ}: one table '
                             'holds runs that differ only in their seed')
    seeds = [run['seed'] for run in runs]
    if len(set(seeds)) < len(seeds):
        raise SeedsError(f'seeds repeat ({seeds}): give runs of distinct seeds')
    return runs


def mean_std(values):
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs):
    """Per-seed numbers, mean ± std and the claims' per-seed differences and verdicts."""
    stats = {k: dict(zip(('mean', 'std'), mean_std([r[k] for r in runs]))) for k in NUMBERS}
    claims = []
    for claim, (better, worse) in CLAIMS.items():
        diffs = [r[better] - r[worse] for r in runs]
        held = sum(d > 0 for d in diffs)
        verdict = ('holds in every seed' if held == len(runs) else
                   'fails in every seed' if held == 0 else f'holds in {held} of {len(runs)} seeds')
        mean, std = mean_std(diffs)
        claims.append(dict(claim=claim, better=better, worse=worse, differences=diffs,
                           mean=mean, std=std, held=held, verdict=verdict))
    return dict(format='mmseg_rass.rass_demo_seeds.v1', seeds=[r['seed'] for r in runs],
                runs=[{k: r[k] for k in ('seed', 'path', 'device', *NUMBERS)} for r in runs],
                stats=stats, claims=claims, tiny_sd_key=runs[0]['tiny_sd']['key'],
                device=device_kind(runs[0]['device']), max_iters=runs[0]['max_iters'])


def format_table(result):
    seeds = result['seeds']
    lines = ['| number | ' + ' | '.join(f'seed {s}' for s in seeds) + ' | mean ± std |',
             '|---|' + '---|' * (len(seeds) + 1)]
    for key in NUMBERS:
        digits = 4 if key.endswith('ssim') else 0 if key == 'wall_seconds' else 2
        cells = [f'{run[key]:.{digits}f}' for run in result['runs']]
        s = result['stats'][key]
        lines.append(f'| {key} | ' + ' | '.join(cells) +
                     f' | {s["mean"]:.{digits}f} ± {s["std"]:.{digits}f} |')
    lines.append('| device | ' + ' | '.join(run['device'] for run in result['runs']) + ' | |')
    lines += ['', '| claim | difference per seed | mean ± std | verdict |', '|---|---|---|---|']
    for c in result['claims']:
        diffs = ', '.join(f'{d:+.2f}' for d in c['differences'])
        lines.append(f'| {c["claim"]} ({c["better"]} − {c["worse"]}) | {diffs} | '
                     f'{c["mean"]:+.2f} ± {c["std"]:.2f} | {c["verdict"]} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    paths = args.results or [run_seed(s, work_dir, args.rass_demo_options) for s in args.seeds]
    result = aggregate(load_runs(paths))
    dump_json(result, osp.join(work_dir, 'rass_demo_seeds.json'))
    table = format_table(result)
    with open(osp.join(work_dir, 'rass_demo_seeds.md'), 'w', encoding='utf-8') as f:
        f.write(table)
    print(table)
    return result


if __name__ == '__main__':
    run_cli(main)
