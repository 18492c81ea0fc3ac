"""projects/ccformer/benchmark/options.py and report.py: the sweep's settings are checked once (the Python API and
the command line refuse the same combinations), and the records' summaries and merged table (no timing asserted)."""

import json
import statistics

import pytest

from projects.ccformer.benchmark import (
    BenchmarkOptions,
    add_model_over_backbone,
    merge_reports,
    summarize_rounds,
    sweep,
    variant_name,
)


@pytest.mark.parametrize(
    'bad, message',
    [
        (dict(iters=0), 'at least 1'),
        (dict(batch_size=(0,)), 'positive'),
        (dict(mode=('serve',)), '--mode'),
        (dict(barrier='/tmp/b', batch_size=(2, 16)), 'one record per process'),
        (dict(backend=('onnxruntime',), device='cpu', amp=('bf16',)), 'fp32 CPU inference'),
        (dict(memory_format=('channels_last',), compile=True), 'eager variant'),
        (dict(rounds=0), 'positive'),
    ],
)
def test_options_refuse_what_cannot_be_timed(bad, message):
    with pytest.raises(ValueError, match=message):
        BenchmarkOptions(config='x.py', **bad).check()


def test_sweep_lists_the_variants_of_one_setting():
    opts = BenchmarkOptions(
        config='x.py', device='cpu', amp=('none', 'bf16'), parts=('model',), backend=('pytorch', 'onnxruntime')
    ).check()
    assert [v['backend'] for v in sweep('infer', 'none', opts)] == ['pytorch', 'onnxruntime']
    assert [v['backend'] for v in sweep('infer', 'bf16', opts)] == ['pytorch']
    assert [variant_name(v) for v in sweep('infer', 'none', opts)] == ['pytorch', 'ort-all']


def _rec(part, median, **kw):
    return dict(
        dict(
            part=part,
            mode='infer',
            amp='none',
            batch_size=2,
            compile=False,
            backend='pytorch',
            memory_format='contiguous',
            threads=1,
            forward_mode='tensor',
            status='ok',
            median_s=median,
            frames_per_s=10 / median,
            clips_per_s=2 / median,
        ),
        **kw,
    )


def test_summaries_over_rounds_and_model_over_backbone():
    recs = [
        _rec('model', 0.4, round=0),
        _rec('model', 0.2, round=0, memory_format='channels_last', max_abs_diff=1e-6, mask_agreement=1.0),
        _rec('model', 0.6, round=1),
        _rec('model', 0.3, round=1, memory_format='channels_last', max_abs_diff=2e-6, mask_agreement=0.9),
        _rec('backbone', 0.1, round=0),
        _rec('model', 9.0, status='error'),
    ]
    summary = {variant_name(e): e for e in summarize_rounds(recs) if e['part'] == 'model'}
    assert summary['pytorch']['median_s'] == pytest.approx(statistics.median([0.4, 0.6]))
    assert summary['channels_last']['speedup_vs_eager'] == pytest.approx(0.5 / 0.25)
    assert summary['channels_last']['max_abs_diff'] == 2e-6 and summary['channels_last']['mask_agreement'] == 0.9
    add_model_over_backbone(recs, ('mode', 'amp', 'batch_size', 'threads', 'round', 'memory_format'))
    assert recs[0]['model_over_backbone'] == pytest.approx(0.1 / 0.4)
    assert 'model_over_backbone' not in recs[2]  # its backbone twin is of another round


def test_merge_reports_lists_unreadable_files(tmp_path):
    good, broken = tmp_path / 'good.json', tmp_path / 'broken.json'
    good.write_text(json.dumps(dict(env=dict(cpu_count=2), results=[_rec('model', 0.5, p10_s=0.4, p90_s=0.6)])))
    broken.write_text('{')
    merged, table = merge_reports([str(good), str(broken)])
    assert [s.get('records') for s in merged['sources']] == [1, None] and 'error' in merged['sources'][1]
    assert merged['results'][0]['source'] == 'good.json'
    assert 'CPU (2 cores)' in table and '| model | infer | none | 2 | eager | 500.0 (400.0-600.0) | 20 |' in table
