"""The GPU check script (tools/analysis_tools/gpu_check.sh -> run_gpu_benchmarks.sh stage check) on CPU in seconds:
every command it runs goes to a stand-in Python that parses benchmark.py's arguments with benchmark.py's own parser
(a typo in a flag fails here) and writes a record per (mode, amp, batch, part); the summary is the real
benchmark_table.py. The real CPU smoke run (GPU_CHECK_CPU=1, tiny model, minutes) is in docs/benchmarks.md."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STAND_IN = '''
import json, os, runpy, sys
root = os.environ['CCFORMER_ROOT']
argv = sys.argv[1:]
with open(os.environ['CALLS'], 'a') as f:
    f.write(json.dumps(argv) + '\\n')
if argv[:2] == ['-m', 'pytest']:
    values = {i + 1 for i, a in enumerate(argv) if a in ('-p', '-k', '--junitxml')}  # option values, not paths
    paths = [a for i, a in enumerate(argv) if i >= 2 and i not in values and not a.startswith('-')]
    assert all(os.path.exists(os.path.join(root, a)) for a in paths)
    sys.exit(0)
if argv[0].endswith('benchmark_table.py'):
    sys.argv = argv
    runpy.run_path(argv[0], run_name='__main__')
    sys.exit(0)
assert argv[0].endswith('benchmark.py'), argv
sys.path[:0] = [root, os.path.join(root, 'tools', 'analysis_tools')]  # this checkout's package and tool
import benchmark
args = benchmark.parse_args(argv[1:])
assert os.path.isfile(args.config), args.config
results = [dict(part=p, mode=m, amp=a, batch_size=b, frames=5, compile=args.compile, status='ok', median_s=0.1,
                compile_mode=args.compile_mode if args.compile else None,
                p10_s=0.1, p90_s=0.1, frames_per_s=50.0 * b, clips_per_s=10.0 * b, max_rss_bytes=2**30)
           for m in args.mode for a in args.amp for b in args.batch_size for p in args.parts]
with open(args.json, 'w') as f:
    json.dump(dict(env=dict(torch='stand-in', cpu_count=2), results=results), f)
'''


def test_gpu_check_wiring_on_cpu(tmp_path):
    stand_in = tmp_path / 'python'
    (tmp_path / 'stand_in.py').write_text(STAND_IN)
    stand_in.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "stand_in.py"} "$@"\n')
    stand_in.chmod(0o755)
    out, calls = tmp_path / 'out', tmp_path / 'calls.jsonl'
    env = dict(os.environ, GPU_CHECK_CPU='1', PYTHON=str(stand_in), CALLS=str(calls), CCFORMER_ROOT=ROOT)
    proc = subprocess.run(
        ['bash', os.path.join(ROOT, 'tools', 'analysis_tools', 'gpu_check.sh'), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [json.loads(line) for line in calls.read_text().splitlines()]
    benches = [r for r in runs if r[0].endswith('benchmark.py')]
    assert len(benches) == 7 and any(r[:2] == ['-m', 'pytest'] for r in runs)
    assert all('--device' in r and r[r.index('--device') + 1] == 'cpu' for r in benches)  # the CPU smoke switch
    steps = [line.split('\t') for line in (out / 'steps.tsv').read_text().splitlines()]
    assert {s[0] for s in steps} >= {
        'cuda-tests',
        'infer-eager',
        'train-eager',
        'total',
        'infer_compiled_bf16_model_bs2',
        'train_compiled_bf16_model_bs2',
    }
    assert all(s[1] == '0' for s in steps), steps
    merged = json.loads((out / 'gpu_check.json').read_text())
    got = {(r['part'], r['mode'], r['batch_size'], r['compile']) for r in merged['results']}
    assert got == {(p, 'infer', b, c) for p in ('model', 'backbone') for b in (2, 16) for c in (False, True)} | {
        ('model', 'train', 2, False),
        ('model', 'train', 2, True),
    }
    assert '| model | infer | bf16 | 16 | reduce-overhead |' in (out / 'gpu_check.md').read_text()
