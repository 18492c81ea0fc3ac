"""tools/analysis_tools/benchmark.py end to end on the tiny model (CPU only, no timing asserted); the library under it
(projects/ccformer/benchmark/) is tested in tests/test_benchmark/."""

import json
import os

import pytest
import torch
from _tools import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the small config the tests and the demo use (tiny backbone, few layers)
TINY_CONFIG = os.path.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')
TINY_SIZE = 32  # smallest size the strides (4..32) allow: keeps the CPU tests fast


bench = load_tool('tools/analysis_tools/benchmark.py')


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """One intra-op thread: on a shared 2-core machine more threads only oversubscribe it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _needs_model():
    try:
        import mmcv._ext  # noqa: F401
        import mmseg  # noqa: F401
    except ImportError as err:  # the project's model needs compiled mmcv
        pytest.skip(f'mmcv/mmseg not importable: {err}')
    if not os.path.isfile(TINY_CONFIG):
        pytest.fail(f'tiny config {TINY_CONFIG} is missing: the benchmark tests need it')


# ----------------------------------------------------------------------------------------------- arguments, helpers


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        bench.parse_args(['x.py', '--iters', '0'])
    with pytest.raises(SystemExit):
        bench.parse_args(['x.py', '--barrier', str(tmp_path), '--batch-size', '2', '16'])


# ----------------------------------------------------------------------------------------------- with the model


def test_cpu_path_writes_valid_json(tmp_path):
    _needs_model()
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
                'train',
                '--amp',
                'none',
                '--batch-size',
                '1',
                '--size',
                str(TINY_SIZE),
                '--iters',
                '2',
                '--warmup',
                '1',
                '--threads',
                '1',
                '--count-ops',
                '--json',
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    data = json.loads(out.read_text())
    assert data['results'] == json.loads(json.dumps(report['results']))
    recs = data['results']
    assert [(r['mode'], r['part']) for r in recs] == [
        ('infer', 'model'),
        ('infer', 'backbone'),
        ('train', 'model'),
        ('train', 'backbone'),
    ]
    for r in recs:
        assert r['status'] == 'ok', r
        assert r['iters'] == 2 and r['frames'] == 5 and r['size'] == TINY_SIZE
        assert r['frames_per_s'] == pytest.approx(5 / r['median_s'])
        assert r['p10_s'] <= r['median_s'] <= r['p90_s']
        assert 0 < r['trainable_params'] <= r['params']
    model_rec, bb_rec = recs[0], recs[1]
    assert bb_rec['params'] < model_rec['params']
    assert model_rec['model_over_backbone'] == pytest.approx(model_rec['frames_per_s'] / bb_rec['frames_per_s'])
    # operation counts (infer only): the backbone's own count is the same inside the model and alone
    ops_model, ops_bb = model_rec['dispatched_ops'], bb_rec['dispatched_ops']
    assert ops_model['by_part']['backbone'] == ops_bb['by_part']['backbone'] > 0
    assert ops_model['total'] == sum(ops_model['by_part'].values()) == sum(ops_model['detail'].values())
    assert ops_model['total'] > ops_bb['total']
    assert ops_model['by_part']['neck'] > 0 and ops_model['detail']['decode_head.decoder'] > 0
    assert 'dispatched_ops' not in recs[2]
    assert data['env']['device'] == 'cpu' and data['env']['torch'] == torch.__version__
    assert data['env']['cpu_threads'] == 1


def test_bf16_pure_and_compiled_model_paths(tmp_path, monkeypatch):
    """--amp bf16-pure times a bf16 copy of the model (fewer operations than autocast; refused for training);
    --compile on the model compiles its tensor core (CCFormer._core, via compile_cfg), on the backbone the module."""
    _needs_model()
    from projects.ccformer.models.utils import compile as compile_utils

    compiled_fns = []
    real_compile = torch.compile

    def spy_compile(fn, **kwargs):
        compiled_fns.append((getattr(fn, '__qualname__', type(fn).__name__), kwargs))
        return real_compile(fn, **kwargs)

    monkeypatch.setattr(compile_utils, '_COMPILED', {})
    monkeypatch.setattr(torch, 'compile', spy_compile)
    threads = torch.get_num_threads()
    common = [
        TINY_CONFIG,
        '--device',
        'cpu',
        '--batch-size',
        '1',
        '--size',
        str(TINY_SIZE),
        '--iters',
        '2',
        '--warmup',
        '2',
        '--threads',
        '1',
        '--parts',
        'model',
    ]
    try:
        report = bench.main(common + ['--mode', 'infer', 'train', '--amp', 'bf16', 'bf16-pure', '--count-ops'])
        compiled = bench.main(
            common
            + [
                '--mode',
                'infer',
                '--amp',
                'none',
                '--compile',
                '--compile-backend',
                'eager',
                '--json',
                str(tmp_path / 'c.json'),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    recs = {(r['mode'], r['amp']): r for r in report['results']}
    assert recs['infer', 'bf16']['status'] == recs['infer', 'bf16-pure']['status'] == 'ok'
    ops = {amp: recs['infer', amp]['dispatched_ops']['total'] for amp in ('bf16', 'bf16-pure')}
    assert ops['bf16-pure'] < ops['bf16'], ops
    assert recs['infer', 'bf16-pure']['param_bytes'] * 2 == recs['infer', 'bf16']['param_bytes']
    assert recs['train', 'bf16-pure']['status'] == 'error' and 'inference only' in recs['train', 'bf16-pure']['error']
    assert recs['train', 'bf16']['status'] == 'ok'
    rec = compiled['results'][0]
    assert rec['status'] == 'ok' and rec['compile'] and rec['compile_backend'] == 'eager' and rec['median_s'] > 0
    assert compiled_fns == [('CCFormer._core', dict(backend='eager', dynamic=False))], compiled_fns


def test_failing_process_releases_the_barrier(tmp_path):
    """A record that fails before its timing (here: bf16-pure training, refused) still counts as ready at the
    barrier, so the other processes of a compiled sweep do not wait for it until their time limit."""
    _needs_model()
    barrier_dir = tmp_path / 'barrier'
    threads = torch.get_num_threads()
    try:
        report = bench.main(
            [
                TINY_CONFIG,
                '--device',
                'cpu',
                '--mode',
                'train',
                '--amp',
                'bf16-pure',
                '--parts',
                'model',
                '--batch-size',
                '1',
                '--size',
                str(TINY_SIZE),
                '--iters',
                '1',
                '--warmup',
                '1',
                '--threads',
                '1',
                '--barrier',
                str(barrier_dir),
                '--barrier-count',
                '2',
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert report['results'][0]['status'] == 'error'
    assert [p.name for p in barrier_dir.iterdir()] == [f'ready.{os.getpid()}']
