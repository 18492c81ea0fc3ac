"""Tests of tools/analysis_tools/benchmark.py and check_equivalence.py (CPU only, no timing asserted); their
building blocks (projects/ccformer/utils/benchmark.py) are tested in tests/test_utils/."""

import importlib.util
import json
import math
import os

import pytest
import torch

from projects.ccformer.utils import benchmark as ub

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, 'tools', 'analysis_tools')
# the small config the tests and the demo use (tiny backbone, few layers)
TINY_CONFIG = os.path.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny_1xb2-toy_avsbench-s4-64x64.py')
TINY_SIZE = 32  # smallest size the strides (4..32) allow: keeps the CPU tests fast


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load('benchmark')


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


def test_equivalence_helpers():
    eq = _load('check_equivalence')
    ref = torch.tensor([[3.0, -4.0]])
    assert eq.relative_error(ref * 1.01, ref) == pytest.approx(0.01)
    assert eq.relative_error(torch.tensor([[float('nan'), 0.0]]), ref) != eq.relative_error(ref, ref)  # NaN
    assert eq.last_logits([torch.zeros(1), ref]) is ref
    a = torch.tensor([[[[[1.0, -1.0]]]]]).expand(1, 3, 1, 1, 2)  # (N, T, K=1, H, W): sign decides
    assert eq.prediction_agreement(a, -a) == 0.0 and eq.prediction_agreement(a, a) == 1.0
    k = torch.zeros(1, 3, 2, 1, 4)  # K = 2: argmax over the class axis
    k[:, :, 1, :, :2] = 1.0
    k[:, :, 0, :, 2:] = 1.0
    assert eq.prediction_agreement(k, k.flip(-3)) == 0.0
    assert eq.max_relative_error([ref], [ref * 2]) == pytest.approx(0.5)
    assert math.isnan(eq.max_relative_error([ref], []))
    assert not eq.ok(float('nan'), 1.0) and eq.ok(0.5, 1.0)


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


def test_autocast_and_train_amp_match_fp32_on_cpu():
    _needs_model()
    eq = _load('check_equivalence')
    cfg = ub.load_config(TINY_CONFIG)
    torch.manual_seed(0)
    model = ub.build_model(cfg)
    recs = eq.run_checks(
        model, torch.device('cpu'), ['autocast', 'train-amp'], ['bf16'], batch=2, frames=5, size=TINY_SIZE
    )
    by = {r['check']: r for r in recs}
    fwd, train = by['autocast-bf16'], by['train-bf16']
    assert fwd['passed'] and train['passed'], recs
    # bf16 really ran (an exact match would mean autocast never reached the model) and stayed close
    assert 0 < fwd['rel_err'] < eq.TOLERANCES['bf16']
    assert 0 < fwd['neck_rel_err'] < eq.TOLERANCES['bf16']
    assert fwd['agreement'] > 0.95
    assert 0 < train['grad_rel_err'] < eq.TOLERANCES['grad_bf16']


def test_compiled_neck_matches_eager_on_cpu():
    """torch.compile (aot_eager: dynamo + AOT autograd graphs, no code generation) of the EIM changes nothing."""
    _needs_model()
    eq = _load('check_equivalence')
    cfg = ub.load_config(TINY_CONFIG)
    torch.manual_seed(0)
    model = ub.build_model(cfg).eval()
    data = ub.make_inputs(2, 5, TINY_SIZE, torch.device('cpu'), torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = list(model.backbone(data['inputs'].flatten(0, 1)))
        audio = model.audio_encoder(data['audio'].flatten(0, 1))
        ref = eq._tensors(model.neck(feats, audio, 5))
        out = eq._tensors(torch.compile(model.neck, backend='aot_eager')(feats, audio, 5))
    torch._dynamo.reset()
    assert len(out) == len(ref) >= 6
    assert eq.max_relative_error(out, ref) < 1e-5


def test_compiled_model_matches_eager_on_cpu():
    """torch.compile tracing of the whole model (dynamo 'eager' backend) changes nothing."""
    _needs_model()
    eq = _load('check_equivalence')
    cfg = ub.load_config(TINY_CONFIG)
    torch.manual_seed(0)
    model = ub.build_model(cfg)
    recs = eq.run_checks(
        model, torch.device('cpu'), ['compile'], [], batch=1, frames=5, size=TINY_SIZE, compile_backend='eager'
    )
    assert recs[0]['passed'], recs
    assert recs[0]['rel_err'] < 1e-5


def test_msda_path_switch_counts_and_restores():
    """The switch used by the GPU kernel-vs-PyTorch check reaches the model's deformable attention (CPU: PyTorch)."""
    _needs_model()
    eq = _load('check_equivalence')
    import mmcv.ops.multi_scale_deform_attn as msda

    cfg = ub.load_config(TINY_CONFIG)
    model = ub.build_model(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    data = ub.make_inputs(1, 5, TINY_SIZE, torch.device('cpu'), gen)
    before = (msda.ext_module.ms_deform_attn_forward, msda.multi_scale_deformable_attn_pytorch)
    with eq.msda_path(model, use_kernel=False) as count:
        out = eq.forward_tensor(model, data, torch.device('cpu'))
        assert all(m.use_cuda_kernel is False for m in model.modules() if hasattr(m, 'use_cuda_kernel'))
    assert count.pytorch > 0 and count.kernel == 0
    assert torch.isfinite(out).all()
    assert (msda.ext_module.ms_deform_attn_forward, msda.multi_scale_deformable_attn_pytorch) == before
    assert all('use_cuda_kernel' not in m.__dict__ for m in model.modules())


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
