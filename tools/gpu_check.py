"""The prepared GPU check: the device-parametrised tests, the main job and every speed/memory
target on one GPU, in one command, into one results file.

    bash tools/gpu_check.sh [--only STEP,...] [--out DIR] [--budget S]   # on a GPU machine
    python tools/gpu_check.py --dry-run [--out DIR]    # anywhere: every step, tiny, on the CPU
    python tools/gpu_check.py --list                   # the steps

Each step records the device, torch/CUDA versions, the command that reruns it (and the
equivalent ``tools/benchmark_*.py`` command lines where one exists), its wall time, its status
(passed / failed / timeout / crashed / not run) and its numbers, with each target beside its
number (met / not met; not judged in a dry run). A step that fails, crashes or outlives its
timeout does not stop the steps after it: the Python steps run in a worker process that is
replaced after any failure (a fresh CUDA context), the test suite and the demo in their own
processes. Steps not started within ``--budget`` seconds are recorded as not run; rerun them
(or the failed ones) with ``--only``. Results, rewritten after every step:
``DIR/gpu_check.json``, ``DIR/gpu_check.md`` (summary) and ``DIR/gpu_check.log`` (all output);
DIR is ``--out``, else ``$OUT``, else ``work_dirs/gpu_check``.

Without CUDA (or with ``--dry-run``) every step runs its own code path on the CPU at tiny sizes
(tiny random diffusion models, a few pixels, one timed iteration): the numbers then prove the
plumbing, not a speed. What each step measures: ``docs/benchmarks.md``, section "GPU check".
"""
import argparse
import datetime
import json
import math
import os
import os.path as osp
import platform
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
TOOLS = osp.join(ROOT, 'tools')

RASS_TRAIN_CONFIG = 'configs/rass/rass_cityscapes_lq.py'
RASS_INFER_CONFIG = 'configs/rass/rass_ade20k_lq.py'  # the paper's dataset; ADE20K test size
SPD_CONFIGS = ('mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py',
               'configs/spd/spd_segformer-b0_cityscapes-lq.py',
               'configs/spt/spt_segformer-b0_cityscapes-lq.py')
MARK = '@@gpu_check '  # worker → driver protocol lines
STARTUP_TIMEOUT = 300  # s for a worker to import and start its next step


# ----------------------------------------------------------------------------- helpers


def load_module(path, name):
    """The Python file ``path`` as a module named ``name`` (the tools are scripts, not a
    package; a file of the package alone, without importing the whole package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(name):
    """``tools/<name>.py`` as a module."""
    return load_module(osp.join(TOOLS, f'{name}.py'), f'{name}_tool')


def target(name, value, op, threshold, unit, dry):
    """A target beside its number: ``met`` is True/False, or None when not judged (dry run, or
    no number)."""
    met = None
    if not dry and value is not None:
        met = value >= threshold if op == '>=' else value <= threshold
    return dict(name=name, value=value, op=op, threshold=threshold, unit=unit, met=met)


def geometric_mean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _cuda_free(ctx):
    if ctx['device'] == 'cuda':
        import torch
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(ctx):
    if ctx['device'] != 'cuda':
        return None
    import torch
    return torch.cuda.max_memory_allocated() / 2**30


def _bench_cmd(script, args):
    return ' '.join(['python', f'tools/{script}.py', *map(shlex.quote, map(str, args))])


def environment(cuda):
    """Device, driver and versions, read without starting CUDA in this process (the GPU work
    runs in child processes)."""
    import importlib.metadata as metadata

    import torch
    env = dict(python=platform.python_version(), torch=torch.__version__,
               torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
               host=platform.node(), device='cuda' if cuda else 'cpu',
               device_name=platform.processor() or platform.machine(), cpu_count=os.cpu_count())
    if cuda:
        try:
            name, driver, memory = subprocess.run(
                ['nvidia-smi', '--query-gpu=name,driver_version,memory.total',
                 '--format=csv,noheader', '--id=0'], capture_output=True, text=True,
                timeout=30).stdout.strip().split(', ')
            env.update(device_name=name, driver=driver, memory=memory)
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            env.update(device_name=f'CUDA device (nvidia-smi failed: {e})')
    for dist in ('mmengine', 'mmcv', 'mmcv-lite', 'mmsegmentation', 'mmdet', 'diffusers',
                 'transformers', 'peft', 'numpy', 'torchvision', 'segment-anything'):
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return env


# ----------------------------------------------------------------------------- Python steps
# Each takes ``ctx`` (``dry``, ``device``, ``scratch``) and returns dict(numbers=..., targets=...,
# equivalent=[command lines], notes=...).


def step_degradation(ctx):
    """``DegradeSegDataPreProcessor`` batched on the device vs ``Degrade`` per image (CPU)."""
    bench = load_tool('benchmark_degradation')
    dry = ctx['dry']
    sizes, batch, repeats = (((64, 64), (64, 128)), 2, 1) if dry else (((512, 512), (512, 1024)),
                                                                       16, 3)
    numbers, targets = {}, []
    for h, w in sizes:
        out = bench.batched_vs_per_image('rass_x1', h, w, batch, ctx['device'], repeats)
        numbers[f'{h}x{w}'] = dict(out, batch=batch)
    first = numbers[f'{sizes[0][0]}x{sizes[0][1]}']
    targets.append(target(f'batched images/s at {sizes[0][0]}x{sizes[0][1]} (rass_x1)',
                          first['batched_images_per_s'], '>=', 500, 'images/s', dry))
    return dict(numbers=numbers, targets=targets,
                notes=f'batch {batch}, preset rass_x1, fastest of {repeats} alternating runs; '
                      'per image = the Degrade transform on the CPU (as in a data loader)')


def step_corruptions(ctx):
    """The 19 ImageNet-C corruptions batched on the device at 512x1024, images/s each."""
    bench = load_tool('benchmark_corruptions')
    from mmseg_rass.transforms.imagenet_c import CORRUPTIONS
    dry = ctx['dry']
    size, batch, repeats = ((32, 64), 2, 1) if dry else ((512, 1024), 16, 3)
    rates = bench.throughput(CORRUPTIONS, bench.sample_images(size), batch, repeats,
                             ctx['device'])
    mean = geometric_mean(rates.values())
    return dict(numbers=dict(size=list(size), batch=batch, severity=3,
                             images_per_s=rates, geometric_mean_images_per_s=mean),
                targets=[target(f'geometric mean over the 19 corruptions at {size[0]}x{size[1]}',
                                mean, '>=', 200, 'images/s', dry)])


def _rass_args(bench, config, dry, extra):
    argv = [config, '--arch', 'tiny' if dry else 'sd21', '--amp', 'bfloat16',
            '--device', 'cpu' if dry else 'cuda', *extra]
    if dry:  # a narrow head on the tiny SD
        argv += ['--iters', '1', '--warmup', '1', '--cfg-options', 'model.backbone.out_channels=16',
                 'model.decode_head.in_channels=[16,16,16,16]', 'model.decode_head.channels=16']
    else:
        argv += ['--iters', '3', '--warmup', '2']
    return bench.parse_args(argv), argv


def step_rass_train(ctx):
    """RASS train step at SD2.1-base size: 512x512 and 512x1024, batch 2, bf16, without and
    with gradient checkpointing (one model, checkpointing switched on its UNet)."""
    bench = load_tool('benchmark_rass')
    dry = ctx['dry']
    crops = ((64, 64), (64, 128)) if dry else ((512, 512), (512, 1024))
    args, argv = _rass_args(bench, RASS_TRAIN_CONFIG, dry, ['--batch', '2'])
    model, cfg = bench.build_model(args)
    rows, targets, equivalent = [], [], []
    for ckpt in (False, True):
        if ckpt:
            model.backbone.unet.enable_gradient_checkpointing()
        else:
            model.backbone.unet.disable_gradient_checkpointing()
        for crop in crops:
            args.crop, args.grad_ckpt = crop, ckpt
            _cuda_free(ctx)
            row = dict(crop=list(crop), grad_ckpt=ckpt)
            try:
                row.update(step_s=bench.time_train_steps(model, cfg, args),
                           peak_gib=_peak_gib(ctx))
            except RuntimeError as e:  # torch.cuda.OutOfMemoryError is one
                if 'out of memory' not in str(e):
                    raise
                row.update(step_s=None, peak_gib=None, error='out of memory')
            rows.append(row)
            equivalent.append(_bench_cmd('benchmark_rass', [
                *argv, '--crop', *crop] + (['--grad-ckpt'] if ckpt else [])))
            if crop == crops[1]:
                targets.append(target(f'peak memory at {crop[0]}x{crop[1]}, batch 2, gradient '
                                      f'checkpointing {"on" if ckpt else "off"}',
                                      row['peak_gib'], '<=', 24, 'GiB', dry))
    return dict(numbers=dict(config=RASS_TRAIN_CONFIG, batch=2, amp='bfloat16', rows=rows),
                targets=targets, equivalent=equivalent)


def step_rass_infer(ctx):
    """RASS inference images/s at the paper's test setting (ADE20K, short side 512, batch 1,
    bf16), through ``test_step`` with the config's windows (the backbone's ``slide_inference``, the
    authors' inference; recorded)."""
    bench = load_tool('benchmark_rass')
    dry = ctx['dry']
    crop = (64, 96) if dry else (512, 683)
    extra = ['--infer', '--batch', '1', '--crop', *map(str, crop)]
    args, argv = _rass_args(bench, RASS_INFER_CONFIG, dry, extra)
    model, _ = bench.build_model(args)
    _cuda_free(ctx)
    seconds = bench.time_inference(model, args)
    layout = bench.window_layout(model, *crop)  # 2 windows on 512x683 (64x96 in a dry run)
    fps = 1 / seconds
    return dict(numbers=dict(config=RASS_INFER_CONFIG, size=list(crop), batch=1, amp='bfloat16',
                             images_per_s=fps, seconds_per_image=seconds,
                             peak_gib=_peak_gib(ctx), **layout),
                targets=[target('inference images/s (paper: 3.4 FPS; target twice that)', fps,
                                '>=', 6.8, 'images/s', dry)],
                equivalent=[_bench_cmd('benchmark_rass', argv)])


def step_scr_train(ctx):
    """SCR train step at SD2.1-base size, 512x512, batch 4, bf16 (AmpOptimWrapper), with LPIPS
    (random VGG16) and L_SCL, without and with gradient checkpointing."""
    bench = load_tool('benchmark_scr')
    dry = ctx['dry']
    kw = (dict(device='cpu', arch='tiny', batch=2, size=64, steps=1, warmup=1, lpips=False)
          if dry else dict(device='cuda', arch='sd21', batch=4, size=512, steps=3, warmup=2))
    rows = bench.step_rows(**kw)
    return dict(numbers=dict(kw, rows=rows, lpips=kw.get('lpips', True)),
                equivalent=[] if dry else [_bench_cmd('benchmark_scr', [
                    'step', '--batch', 4, '--size', 512, '--steps', 3, '--warmup', 2])],
                notes='dry run: LPIPS off (its random VGG16 file is 528 MB)' if dry else None)


def step_segsr(ctx):
    """SegSR at SD2.1-base size (SRDM + MiT-B2 SegDM + bridge): bf16 train step (batch 2, 512²)
    and sampling of one 512² image at 4 and 20 reverse steps."""
    import torch
    bench = load_tool('benchmark_segsr')
    dry = ctx['dry']
    config, size, batch, iters = ((bench.TINY, 64, 1, 1) if dry else (bench.SD21, 512, 2, 2))
    out = bench.train_and_sample_times(config, ctx['device'], batch, size, iters, (4, 20),
                                       torch.bfloat16)
    out['sampling_s'] = {str(k): v for k, v in out['sampling_s'].items()}
    return dict(numbers=dict(config=osp.relpath(config, ROOT), batch=batch, size=size, **out),
                equivalent=[] if dry else [_bench_cmd('benchmark_segsr', [
                    'gpu', '--batch', 2, '--size', 512, '--iters', 2])])


def step_sam_priors(ctx):
    """SPD student vs base latency (SegFormer-B0, 512x1024) and SPT with a ViT-B SAM (random
    weights) generating masks on the fly."""
    bench = load_tool('benchmark_sam_priors')
    if ctx['dry']:
        argv = ['--size', '64', '128', '--iters', '2', '--warmup', '0', '--sam-iters', '1',
                '--points-per-side', '4', '--prior-samples', '2']
    else:
        base, spd, spt = SPD_CONFIGS
        argv = ['--base-config', base, '--spd-config', spd, '--spt-config', spt, '--size', '512',
                '1024', '--iters', '50', '--warmup', '5', '--sam', 'vit_b', '--sam-iters', '2',
                '--points-per-side', '32', '--device', 'cuda']
    out = bench.main(argv)
    return dict(numbers=out, equivalent=[_bench_cmd('benchmark_sam_priors', argv)],
                targets=[target('SPD student / base latency', out['spd_ratio'], '<=', 1.05, '×',
                                ctx['dry'])])


PY_STEPS = dict(degradation=step_degradation, corruptions=step_corruptions,
                rass_train=step_rass_train, rass_infer=step_rass_infer, scr_train=step_scr_train,
                segsr=step_segsr, sam_priors=step_sam_priors)


# ----------------------------------------------------------------------------- shell steps
# Each returns (argv, extra environment); its parser turns the output into numbers.


def shell_tests_cuda(ctx):
    return [sys.executable, '-m', 'pytest', 'tests', '-m', 'cuda', '-q', '-rfEs'], {}


def parse_pytest(output, rc, dry):
    """Counts of the summary line and the failed tests; on a GPU every selected test must
    pass (a skipped CUDA case means pytest saw no GPU), in a dry run they are skipped."""
    counts = {}
    pattern = r'(\d+) (passed|failed|skipped|deselected|errors?)\b'
    tail = [line for line in output.splitlines() if re.search(pattern, line)]
    for count, word in re.findall(pattern, tail[-1] if tail else ''):
        counts[word.rstrip('s') if word.startswith('error') else word] = int(count)
    counts['failed_tests'] = re.findall(r'^(?:FAILED|ERROR) (\S+)', output, re.M)
    return counts, rc == 0 and bool(counts.get('skipped' if dry else 'passed')) and (
        dry or not counts.get('skipped'))


def shell_demo(ctx):
    env = dict(WORK_DIR=osp.join(ctx['scratch'], 'demo'))
    # one config through tools/train.py + tools/test.py on CUDA (the whole RASS pipeline of
    # `run_demo.sh` without arguments pretrains its tiny SD on the CPU: 36 min the first time)
    argv = ['bash', 'tools/run_demo.sh', 'configs/rass/rass_tiny_demo.py']
    if ctx['dry']:  # a tiny data set (made here without importing mmseg) and two iterations
        demo_data = load_module(osp.join(ROOT, 'mmseg_rass', 'datasets', 'demo_data.py'),
                                'demo_data')
        env['DEMO_DATA'] = osp.join(ctx['scratch'], 'demo_data')
        demo_data.make_demo_cityscapes(env['DEMO_DATA'], num_train=2, num_val=1, height=64,
                                       width=128)
        argv += ['--cfg-options', 'train_cfg.max_iters=2',
                 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
                 'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
                 'train_dataloader.persistent_workers=False']
    return argv, env


def parse_demo(output, rc, dry):
    """mIoU and time of the ``[demo]`` line and the GPU mmengine reported (a GPU run that
    trained on the CPU fails)."""
    numbers = {}
    found = re.search(r'\[demo\] (\S+): mIoU: ([0-9.]+) .* in (\d+) s', output)
    if found:
        numbers.update(config=found.group(1), miou=float(found.group(2)),
                       train_and_eval_s=int(found.group(3)))
    gpu = re.search(r'GPU 0[^:]*: (.+)', output)
    numbers['device_seen_by_mmengine'] = gpu.group(1).strip() if gpu else 'cpu'
    return numbers, rc == 0 and found is not None and (dry or gpu is not None)


SHELL_STEPS = dict(tests_cuda=(shell_tests_cuda, parse_pytest), demo=(shell_demo, parse_demo))

# name: (title, timeout on a GPU (s), timeout of the dry run (s))
STEPS = {
    'tests_cuda': ('device-parametrised tests on CUDA (pytest -m cuda)', 240, 120),
    'degradation': ('DegradeSegDataPreProcessor batched vs per image', 120, 60),
    'corruptions': ('ImageNet-C corruptions on the device', 180, 60),
    'rass_train': ('RASS train step, SD2.1-base, bf16', 240, 120),
    'rass_infer': ('RASS inference, paper test setting', 150, 120),
    'scr_train': ('SCR train step, SD2.1-base, 512², batch 4, bf16', 240, 120),
    'segsr': ('SegSR train step and sampling at 4 / 20 steps, 512²', 180, 120),
    'sam_priors': ('SPD vs base latency; SPT with ViT-B SAM on the fly', 180, 120),
    'demo': ("the README's main job's train/test path (bash tools/run_demo.sh CONFIG)", 360, 180),
}
assert set(STEPS) == set(PY_STEPS) | set(SHELL_STEPS)


# ----------------------------------------------------------------------------- worker


def worker(names, dry, scratch):
    """Run Python steps in order, one result line each; exit after the first failure so that
    the driver continues in a fresh process (a fresh CUDA context)."""
    import gc

    import torch

    import mmseg_rass  # noqa: F401  (compat, registries)
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    ctx = dict(dry=dry, device='cpu' if dry else 'cuda', scratch=scratch)
    if dry:
        torch.set_num_threads(1)
    for name in names:
        print(f'{MARK}start {name}', flush=True)
        try:
            result = dict(status='passed', **PY_STEPS[name](ctx))
        except BaseException as e:  # noqa: B036  (KeyboardInterrupt too: report, then stop)
            traceback.print_exc()
            result = dict(status='failed', error=f'{type(e).__name__}: {e}'[:2000])
        print(f'{MARK}result {json.dumps(result, default=str)}', flush=True)
        gc.collect()
        if result['status'] != 'passed':
            sys.exit(1)
        if ctx['device'] == 'cuda':
            torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- driver


class Process:
    """A child process whose output lines are read with a timeout (a reader thread)."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors='replace',
                                     start_new_session=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self, deadline):
        """The next line; None at the end of the output; raises TimeoutError at ``deadline``."""
        try:
            return self.lines.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            raise TimeoutError from None

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


class Check:
    """Runs the selected steps and keeps the results file up to date."""

    def __init__(self, args):
        import torch
        self.dry = args.dry_run or not torch.cuda.is_available()
        self.out = osp.abspath(args.out or os.environ.get('OUT') or
                               osp.join(ROOT, 'work_dirs', 'gpu_check'))
        os.makedirs(self.out, exist_ok=True)
        self.scratch = tempfile.mkdtemp(prefix='gpu_check_')
        self.log = open(osp.join(self.out, 'gpu_check.log'), 'w', encoding='utf-8')
        self.start = time.monotonic()
        self.budget = args.budget or (600 if self.dry else 540)
        self.env = dict(os.environ, PYTHONUNBUFFERED='1',
                        PYTHONPATH=os.pathsep.join(filter(None, [
                            ROOT, os.environ.get('PYTHONPATH')])))
        if self.dry:
            self.env.setdefault('OMP_NUM_THREADS', '1')
        self.results = dict(
            tool='tools/gpu_check.py', dry_run=self.dry, argv=args.argv,
            started=datetime.datetime.now().isoformat(timespec='seconds'),
            env=environment(not self.dry), budget_s=self.budget, steps=[])

    # -- bookkeeping
    def record(self, name, **fields):
        title, gpu_timeout, dry_timeout = STEPS[name]
        env = self.results['env']
        step = dict(name=name, title=title, device=env['device_name'], torch=env['torch'],
                    cuda=env['torch_cuda'], timeout_s=dry_timeout if self.dry else gpu_timeout,
                    numbers={}, targets=[], equivalent=[])
        step.update({k: v for k, v in fields.items() if v is not None})
        self.results['steps'].append(step)
        self.results['elapsed_s'] = round(time.monotonic() - self.start, 1)
        self.write()
        met = [t['met'] for t in step['targets']]
        verdict = ('' if not met else '; targets: ' + ', '.join(
            {True: 'met', False: 'NOT met', None: 'not judged'}[m] for m in met))
        print(f'[gpu_check] {name}: {step["status"]}'
              f'{" in %.1f s" % step["wall_s"] if "wall_s" in step else ""}{verdict}',
              flush=True)

    def write(self):
        path = osp.join(self.out, 'gpu_check.json')
        with open(path + '.tmp', 'w', encoding='utf-8') as f:
            json.dump(self.results, f, indent=1, default=str)
        os.replace(path + '.tmp', path)
        with open(osp.join(self.out, 'gpu_check.md'), 'w', encoding='utf-8') as f:
            f.write(markdown(self.results))

    def left(self):
        return self.budget - (time.monotonic() - self.start)

    def timeout(self, name):
        """The step's own timeout, cut to what is left of the budget."""
        return min(STEPS[name][2 if self.dry else 1], max(self.left(), 0))

    def timeout_error(self, name):
        own = STEPS[name][2 if self.dry else 1]
        return (f'no result within its timeout ({own} s)' if self.left() > 0 else
                f'stopped at the end of the time budget ({self.budget:.0f} s): rerun with --only')

    def rerun_command(self, name):
        return (f'python tools/gpu_check.py --dry-run --only {name}' if self.dry else
                f'bash tools/gpu_check.sh --only {name}')

    # -- running
    def run(self, names):
        pending = list(names)
        while pending:
            if self.left() <= 0:
                for name in pending:
                    self.record(name, status='not run', error='time budget spent '
                                f'({self.budget} s): rerun with --only',
                                command=self.rerun_command(name))
                return
            if pending[0] in SHELL_STEPS:
                self.run_shell(pending.pop(0))
                continue
            group = []
            while pending and pending[0] in PY_STEPS:
                group.append(pending.pop(0))
            pending[:0] = self.run_worker(group)

    def run_shell(self, name):
        build, parse = SHELL_STEPS[name]
        argv, extra_env = build(dict(dry=self.dry, scratch=self.scratch))
        command = ' '.join([*(f'{k}={shlex.quote(v)}' for k, v in extra_env.items()),
                            *map(shlex.quote, argv)])
        self.log.write(f'\n===== {name}: {command}\n')
        start = time.monotonic()
        proc = Process(argv, dict(self.env, **extra_env))
        deadline, output, status = start + self.timeout(name), [], None
        while True:
            try:
                line = proc.next_line(deadline)
            except TimeoutError:
                proc.kill()
                status = 'timeout'
                output.append(f'[gpu_check] {self.timeout_error(name)}\n')
                break
            if line is None:
                break
            output.append(line)
            self.log.write(line)
        rc = proc.proc.wait()
        text = ''.join(output)
        numbers, ok = parse(text, rc, self.dry)
        self.record(name, status=status or ('passed' if ok else 'failed'), command=command,
                    wall_s=round(time.monotonic() - start, 1), numbers=numbers,
                    exit_code=rc, log_tail=None if ok else text[-3000:])

    def worker_argv(self, names):
        """The command line of a worker process running ``names``."""
        return [sys.executable, osp.join(TOOLS, 'gpu_check.py'), '--worker', ','.join(names),
                '--scratch', self.scratch] + (['--dry-run'] if self.dry else [])

    def run_worker(self, names):
        """Run a group of Python steps in one worker; return the steps it did not reach."""
        proc = Process(self.worker_argv(names), self.env)
        todo, current, output, started = list(names), None, [], False
        start = time.monotonic()
        deadline = start + STARTUP_TIMEOUT
        while True:
            try:
                line = proc.next_line(deadline)
            except TimeoutError:
                proc.kill()
                if current is None:  # hung between steps (imports)
                    break
                self.record(current, status='timeout', command=self.rerun_command(current),
                            wall_s=round(time.monotonic() - start, 1),
                            error=self.timeout_error(current), log_tail=''.join(output)[-3000:])
                return todo
            if line is None:
                break
            self.log.write(line)
            if line.startswith(MARK + 'start '):
                current, started = line[len(MARK) + 6:].strip(), True
                todo.remove(current)
                if self.left() <= 0:  # the run() loop records it and the rest as not run
                    proc.kill()
                    return [current] + todo
                start, output = time.monotonic(), []
                deadline = start + self.timeout(current)
                self.log.write(f'\n===== {current}\n')
            elif line.startswith(MARK + 'result '):
                result = json.loads(line[len(MARK) + 7:])
                if result['status'] != 'passed':
                    result['log_tail'] = ''.join(output)[-3000:]
                self.record(current, command=self.rerun_command(current),
                            wall_s=round(time.monotonic() - start, 1), **result)
                current, output = None, []
                deadline = time.monotonic() + STARTUP_TIMEOUT
            else:
                output.append(line)
        rc = proc.proc.wait()
        if current is not None or not started:  # died inside a step, or before the first one
            for name in [current] if current is not None else todo:
                self.record(name, status='crashed', command=self.rerun_command(name),
                            wall_s=round(time.monotonic() - start, 1), exit_code=rc,
                            error=f'the worker process ended with exit code {rc}',
                            log_tail=''.join(output)[-3000:])
            return todo if started else []
        return todo

    def finish(self):
        import shutil
        self.results['finished'] = datetime.datetime.now().isoformat(timespec='seconds')
        self.results['elapsed_s'] = round(time.monotonic() - self.start, 1)
        self.write()
        self.log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        print(markdown(self.results, details=False))
        print(f'[gpu_check] results: {osp.join(self.out, "gpu_check.json")}, gpu_check.md, '
              'gpu_check.log')


# ----------------------------------------------------------------------------- report


def _fmt(value):
    if isinstance(value, float):
        return f'{value:.3g}' if abs(value) < 100 else f'{value:.0f}'
    if isinstance(value, dict):
        return '{' + ', '.join(f'{k}: {_fmt(v)}' for k, v in value.items()) + '}'
    if isinstance(value, list):
        return '[' + ', '.join(_fmt(v) for v in value) + ']'
    return str(value)


def _target_cell(t):
    verdict = {True: 'met', False: '**not met**', None: 'not judged'}[t['met']]
    value = 'n/a' if t['value'] is None else _fmt(t['value'])
    return f"{t['name']}: {value} {t['unit']} (target {t['op']} {t['threshold']}: {verdict})"


def markdown(results, details=True):
    """The results as Markdown: a header, the summary table and (``details``) a section per
    step."""
    env = results['env']
    dry = ' (DRY RUN: tiny sizes on the CPU, numbers prove plumbing only)'
    lines = [f"# GPU check{dry if results['dry_run'] else ''}", '',
             f"device: {env['device_name']} | driver {env.get('driver', '–')} | torch "
             f"{env['torch']} | CUDA {env['torch_cuda']} | cuDNN {env['cudnn']} | host "
             f"{env['host']} | started {results['started']} | {results.get('elapsed_s', 0)} s "
             f"of a {results['budget_s']:.0f} s budget", '',
             'versions: ' + ', '.join(f'{k} {env[k]}' for k in (
                 'python', 'mmengine', 'mmcv', 'mmcv-lite', 'mmsegmentation', 'mmdet',
                 'diffusers', 'transformers', 'peft', 'numpy', 'torchvision') if k in env), '',
             '| step | status | wall (s) | targets |', '|---|---|---:|---|']
    for s in results['steps']:
        targets = '<br>'.join(_target_cell(t) for t in s['targets']) or '–'
        lines.append(f"| {s['name']} | {s['status']} | {s.get('wall_s', '–')} | {targets} |")
    for s in results['steps'] if details else []:
        lines += ['', f"## {s['name']}: {s['title']}", '', f"- status: {s['status']}",
                  f"- command: `{s.get('command', '')}`"]
        lines += [f'- equivalent: `{c}`' for c in s.get('equivalent', [])]
        for key, value in s['numbers'].items():
            lines.append(f'- {key}: {_fmt(value)}')
        if s.get('notes'):
            lines.append(f"- notes: {s['notes']}")
        if s.get('error'):
            lines.append(f"- error: {s['error']}")
    return '\n'.join(lines) + '\n'


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='steps: ' + ', '.join(STEPS))
    parser.add_argument('--dry-run', action='store_true',
                        help='tiny sizes on the CPU (the default without CUDA)')
    parser.add_argument('--only', help='comma-separated steps to run (default: all, in order)')
    parser.add_argument('--out', help='results folder (default $OUT, else work_dirs/gpu_check)')
    parser.add_argument('--budget', type=float,
                        help='seconds after which no step starts (default 540; 600 dry)')
    parser.add_argument('--list', action='store_true', help='print the steps and exit')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--scratch', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    names = (args.only or args.worker or ','.join(STEPS)).split(',')
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        parser.error(f'unknown step(s) {", ".join(unknown)}: choose from {", ".join(STEPS)}')
    args.steps = [n for n in STEPS if n in names]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        for name, (title, gpu_timeout, _) in STEPS.items():
            print(f'{name:12s} {title} (timeout {gpu_timeout} s on a GPU)')
        return None
    if args.worker:
        return worker(args.steps, args.dry_run, args.scratch)
    check = Check(args)
    print(f"[gpu_check] {'dry run on the CPU' if check.dry else 'CUDA'}: "
          f"{', '.join(args.steps)} -> {check.out}", flush=True)
    try:
        check.run(args.steps)
    finally:
        check.finish()
    return check.results


if __name__ == '__main__':
    main()
