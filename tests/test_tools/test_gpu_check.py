"""tools/gpu_check.py (the prepared GPU check): its dry run runs every step's code on the CPU
and writes one results file with each step's status and numbers; a failing, crashing or hung
step does not stop the others; tools/gpu_check.sh's entry points."""
import json
import os
import shutil
import subprocess
import sys

import pytest


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory, tool_runner):
    out = tmp_path_factory.mktemp('gpu_check')
    proc = tool_runner(['tools/gpu_check.py', '--dry-run', '--out', str(out)], timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / 'gpu_check.json').read_text()), out, proc.stdout


def test_dry_run_records_every_step_with_status_and_numbers(dry_run, tool_loader):
    results, out, stdout = dry_run
    steps = {s['name']: s for s in results['steps']}
    assert list(steps) == list(tool_loader('gpu_check').STEPS)
    assert results['dry_run'] and results['env']['device'] == 'cpu'
    for name, step in steps.items():
        assert step['status'] == 'passed', (name, step.get('error'), step.get('log_tail'))
        assert step['wall_s'] >= 0 and step['command'] and step['torch'] and step['device']
        assert step['numbers'], name
        assert all(t['met'] is None for t in step['targets']), name  # not judged in a dry run
    n = steps['tests_cuda']['numbers']
    assert n['skipped'] >= 5 and 'passed' not in n and n['failed_tests'] == []  # no GPU here
    assert steps['degradation']['numbers']['64x64']['batched_images_per_s'] > 0
    corruptions = steps['corruptions']['numbers']
    assert len(corruptions['images_per_s']) == 19 and corruptions['geometric_mean_images_per_s'] > 0
    rows = steps['rass_train']['numbers']['rows']
    assert [(r['crop'], r['grad_ckpt']) for r in rows] == [
        ([64, 64], False), ([64, 128], False), ([64, 64], True), ([64, 128], True)]
    assert all(r['step_s'] > 0 for r in rows) and len(steps['rass_train']['equivalent']) == 4
    infer = steps['rass_infer']['numbers']
    assert infer['window_count'] == 2 and infer['images_per_s'] > 0
    assert infer['windows'] == 'backbone slide_inference'
    assert [r['gradient_checkpointing'] for r in steps['scr_train']['numbers']['rows']] == [
        False, True]
    assert set(steps['segsr']['numbers']['sampling_s']) == {'4', '20'}
    assert steps['sam_priors']['numbers']['spd_ratio'] > 0
    assert 0 <= steps['demo']['numbers']['miou'] <= 100
    assert steps['demo']['numbers']['device_seen_by_mmengine'] == 'cpu'
    summary = (out / 'gpu_check.md').read_text()
    assert 'DRY RUN' in summary and all(f'| {name} | passed |' in summary for name in steps)
    assert '[demo] configs/rass/rass_tiny_demo.py: mIoU' in (out / 'gpu_check.log').read_text()
    assert '| demo | passed |' in stdout


FAKE_WORKER = r'''
import sys, time
mark = '@@gpu_check '
for name in sys.argv[1].split(','):
    print(mark + 'start ' + name, flush=True)
    if name == 'crashes':
        print('segmentation fault, say', flush=True)
        sys.exit(3)
    if name == 'hangs':
        time.sleep(60)
    status = 'failed' if name == 'fails' else 'passed'
    print(mark + 'result {"status": "%s", "numbers": {"x": 1}}' % status, flush=True)
    if status == 'failed':
        sys.exit(1)
'''


def test_a_failing_crashing_or_hung_step_does_not_stop_the_others(tool_loader, tmp_path,
                                                                    monkeypatch):
    tool = tool_loader('gpu_check')
    names = ['fails', 'ok', 'crashes', 'hangs', 'last']
    monkeypatch.setattr(tool, 'STEPS', {n: (n, 2, 2) for n in names})
    monkeypatch.setattr(tool, 'PY_STEPS', dict.fromkeys(names))
    check = tool.Check(tool.parse_args(['--out', str(tmp_path), '--dry-run']))
    workers = []

    def fake_worker(steps):
        workers.append(steps)
        return [sys.executable, '-c', FAKE_WORKER, ','.join(steps)]

    check.worker_argv = fake_worker
    check.run(names)
    check.finish()
    results = json.loads((tmp_path / 'gpu_check.json').read_text())
    status = {s['name']: s['status'] for s in results['steps']}
    assert status == dict(fails='failed', ok='passed', crashes='crashed', hangs='timeout',
                          last='passed')
    assert workers == [names, names[1:], names[3:], names[4:]]  # a fresh worker after each
    crashed = next(s for s in results['steps'] if s['name'] == 'crashes')
    assert crashed['exit_code'] == 3 and 'segmentation fault, say' in crashed['log_tail']
    hung = next(s for s in results['steps'] if s['name'] == 'hangs')
    assert 'within its timeout (2 s)' in hung['error'] and hung['wall_s'] < 10
    assert all(s['command'] == f"python tools/gpu_check.py --dry-run --only {s['name']}"
               for s in results['steps'])


def test_budget_spent_steps_are_recorded_as_not_run(tool_loader, tmp_path, monkeypatch):
    tool = tool_loader('gpu_check')
    monkeypatch.setattr(tool, 'STEPS', {'late': ('late', 2, 2)})
    check = tool.Check(tool.parse_args(['--out', str(tmp_path), '--dry-run', '--budget', '1']))
    check.start -= 2
    check.run(['late'])
    check.finish()
    step = check.results['steps'][0]
    assert step['status'] == 'not run' and 'time budget spent (1.0 s)' in step['error']


def test_only_names_steps_and_unknown_ones_are_refused(tool_loader, capsys):
    tool = tool_loader('gpu_check')
    assert tool.parse_args(['--only', 'demo,degradation']).steps == ['degradation', 'demo']
    with pytest.raises(SystemExit):
        tool.parse_args(['--only', 'degradation,nope'])
    assert 'unknown step(s) nope: choose from tests_cuda, degradation' in capsys.readouterr().err


def test_shell_entry_lists_steps_and_without_venv_or_wheels_says_what_to_do(repo_root,
                                                                            tmp_path):
    env = dict(os.environ, PYTHONPATH=repo_root)
    listing = subprocess.run(['bash', 'tools/gpu_check.sh', '--list'], cwd=repo_root, env=env,
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and 'rass_infer' in listing.stdout
    (tmp_path / 'tools').mkdir()
    shutil.copy(os.path.join(repo_root, 'tools', 'gpu_check.sh'), tmp_path / 'tools')
    bare = subprocess.run(['bash', 'tools/gpu_check.sh'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == 1 and bare.stdout == ''
    assert bare.stderr.count('\n') == 1 and '--fetch-wheels' in bare.stderr


def test_shell_step_verdicts_on_a_gpu_need_the_gpu(tool_loader):
    tool = tool_loader('gpu_check')
    skipped = '5 skipped, 447 deselected in 4.57s\n'
    assert tool.parse_pytest(skipped, 0, dry=True)[1]
    assert not tool.parse_pytest(skipped, 0, dry=False)[1]  # pytest saw no GPU
    failed = 'FAILED tests/a.py::test_x[cuda] - boom\n1 failed, 4 passed, 447 deselected in 9s\n'
    counts, ok = tool.parse_pytest(failed, 1, dry=False)
    assert not ok and counts['failed'] == 1 and counts['passed'] == 4
    assert counts['failed_tests'] == ['tests/a.py::test_x[cuda]']
    assert tool.parse_pytest('5 passed, 447 deselected in 9s\n', 0, dry=False)[1]
    demo = '[demo] configs/rass/rass_tiny_demo.py: mIoU: 25.83 (val, demo data) — trained in 90 s'
    numbers, ok = tool.parse_demo(demo, 0, dry=False)
    assert not ok and numbers['miou'] == 25.83 and numbers['device_seen_by_mmengine'] == 'cpu'
    numbers, ok = tool.parse_demo('    GPU 0: NVIDIA H100 80GB HBM3\n' + demo, 0, dry=False)
    assert ok and numbers['device_seen_by_mmengine'] == 'NVIDIA H100 80GB HBM3'
