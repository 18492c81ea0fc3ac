"""Tests of benchmark.py's ONNX Runtime / channels-last variants and rounds, and of benchmark_table.py (CPU, tiny
config; no timing asserted)."""

import json
import os
import statistics
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, 'tools', 'analysis_tools')
TINY_CONFIG = os.path.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import benchmark as bench  # noqa: E402
import benchmark_table  # noqa: E402

from projects.ccformer.benchmark import sweep, variant_name  # noqa: E402


def test_variants_are_interleaved_checked_and_summarised(tmp_path):
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'bench.json'
    threads = torch.get_num_threads()
    try:
        report = bench.main(
            [
                TINY_CONFIG,
                '--device',
                'cpu',
                '--mode',
                'infer',
                '--amp',
                'none',
                '--batch-size',
                '2',
                '--size',
                '32',
                '--iters',
                '2',
                '--warmup',
                '1',
                '--threads',
                '1',
                '--parts',
                'model',
                '--backend',
                'pytorch',
                'onnxruntime',
                '--memory-format',
                'contiguous',
                'channels_last',
                '--ort-opt-level',
                'disable',
                'all',
                '--ort-precision',
                'fp32',
                'int8',
                '--rounds',
                '2',
                '--json',
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    recs = report['results']
    variants = ['pytorch', 'channels_last', 'ort-disable', 'ort-disable-int8', 'ort-all', 'ort-all-int8']
    assert [(r['round'], variant_name(r)) for r in recs] == [(k, v) for k in range(2) for v in variants]
    for r in recs:
        assert r['status'] == 'ok', r
        assert r['threads'] == 1 and r['batch_size'] == 2 and r['frames_per_s'] == pytest.approx(10 / r['median_s'])
        if variant_name(r).endswith('int8'):  # quantised weights: other logits, recorded
            assert 1e-4 < r['max_abs_diff'] and 0 < r['mask_agreement'] <= 1
        elif variant_name(r) != 'pytorch':  # same logits as the eager model on the timed inputs
            assert r['max_abs_diff'] < 1e-4 and r['mask_agreement'] == 1
    assert report['onnx_bytes'] > 0 and report['onnx_int8_bytes'] > 0 and report['export_s'] > 0  # once, here
    summary = {variant_name(e): e for e in report['summary']}
    assert set(summary) == set(variants)
    for name, entry in summary.items():
        per_round = [r['median_s'] for r in recs if variant_name(r) == name]
        assert entry['rounds'] == 2 and entry['per_round_median_s'] == per_round
        assert entry['median_s'] == pytest.approx(statistics.median(per_round))
        assert entry['speedup_vs_eager'] == pytest.approx(summary['pytorch']['median_s'] / entry['median_s'])
    assert summary['pytorch']['speedup_vs_eager'] == 1.0
    assert json.loads(out.read_text())['summary'] == json.loads(json.dumps(report['summary']))


def test_onnxruntime_variant_needs_fp32_cpu_inference_of_the_model():
    base = [TINY_CONFIG, '--backend', 'onnxruntime', '--device', 'cpu']
    for extra in (
        ['--mode', 'train'],
        ['--amp', 'bf16'],
        ['--parts', 'backbone'],
        ['--compile'],
        ['--forward-mode', 'predict'],
        ['--device', 'cuda'],
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(base + extra)
    with pytest.raises(SystemExit):
        bench.parse_args([TINY_CONFIG, '--rounds', '0'])
    args = bench.parse_args(base + ['--mode', 'infer', 'train', '--amp', 'none', 'bf16'])
    assert [v['backend'] for v in sweep('infer', 'none', args)] == ['pytorch', 'pytorch', 'onnxruntime']
    assert [v['backend'] for v in sweep('train', 'none', args)] == ['pytorch', 'pytorch']
    assert [v['backend'] for v in sweep('infer', 'bf16', args)] == ['pytorch', 'pytorch']


def _record(part, batch, median, **kw):
    rec = dict(
        part=part,
        mode='infer',
        amp='bf16',
        batch_size=batch,
        frames=5,
        compile=False,
        status='ok',
        median_s=median,
        p10_s=median * 0.9,
        p90_s=median * 1.1,
        frames_per_s=batch * 5 / median,
        clips_per_s=batch / median,
        peak_mem_bytes=2**30,
    )
    rec.update(kw)
    return rec


def test_benchmark_table_merges_reports_steps_and_failures(tmp_path):
    a, b, broken = tmp_path / 'model.json', tmp_path / 'backbone.json', tmp_path / 'broken.json'
    env = dict(gpu='NVIDIA H200', torch='2.11.0', mmcv='2.1.0')
    a.write_text(
        json.dumps(
            dict(
                env=env,
                argv=['x'],
                results=[
                    _record('model', 2, 0.02),
                    _record('model', 16, 0.1, status='oom', error='CUDA out of memory'),
                ],
            )
        )
    )
    b.write_text(json.dumps(dict(env=env, results=[_record('backbone', 2, 0.01)])))
    broken.write_text('{"results": [')  # a step killed while writing: listed, not fatal
    steps = tmp_path / 'steps.tsv'
    steps.write_text('cuda-tests\t0\t95\t300\ninfer_compiled_bf16_model_bs2\t124\t290\t290\ntotal\t0\t410\t480\n')
    merged = benchmark_table.main(
        [
            str(a),
            str(b),
            str(broken),
            '--steps',
            str(steps),
            '--budget',
            '480',
            '--json',
            str(tmp_path / 'all.json'),
            '--markdown',
            str(tmp_path / 'all.md'),
        ]
    )
    assert json.loads((tmp_path / 'all.json').read_text()) == merged
    model = [r for r in merged['results'] if r['part'] == 'model' and r['status'] == 'ok'][0]
    assert model['model_over_backbone'] == pytest.approx(0.5) and model['source'] == 'model.json'
    assert [s.get('error', '')[:15] for s in merged['sources']] == ['', '', 'JSONDecodeError']
    assert [(s['name'], s['status']) for s in merged['steps']] == [
        ('cuda-tests', 'ok'),
        ('infer_compiled_bf16_model_bs2', 'timeout'),
        ('total', 'ok'),
    ]
    md = (tmp_path / 'all.md').read_text()
    assert 'NVIDIA H200' in md and '| model | infer | bf16 | 2 | eager | 20.0 (18.0-22.0) | 500 | 100.0 | 0.50 |' in md
    assert '**oom**: CUDA out of memory' in md and '1.00 GiB (CUDA)' in md
    assert '410 s in all before this summary, budget 480 s' in md
