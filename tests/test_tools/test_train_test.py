"""End-to-end tests of tools/train.py, tools/test.py, tools/dist_train.sh and mmseg's own tools on the tiny config.

Every run is a subprocess, exactly the user's command line. The tiny config trains 2 iterations per epoch on the
shared toy S4 data (3 train clips, batch 2).
"""

import glob
import json
import os
import os.path as osp
import shutil
import signal
import socket
import subprocess
import sys
import time

import cv2
import pytest
import torch
from _tools import load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')
MMSEG_TOOLS = osp.join(osp.dirname(__import__('mmseg').__file__), '.mim', 'tools')
ITERS_PER_EPOCH = 2  # 3 toy train clips, batch 2, no drop_last
METRIC_KEYS = ('mIoU', 'Fscore', 'maxFscore', 'legacy_mIoU', 'legacy_Fscore')


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    # as in an activated environment: `python` in the shell scripts is this interpreter (make test does not activate)
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    # the tools import the installed package (pip install -e .); PYTHONPATH makes it this checkout's copy
    env['PYTHONPATH'] = ROOT
    return env


def _data_opts(root: str, epochs: int = 1, interval: int = 1) -> list:
    # the tiny config wraps its training set in NegativeAudioDataset (configs/_base_/robust.py)
    opts = [f'train_dataloader.dataset.dataset.data_root={root}'] + [
        f'{s}_dataloader.dataset.data_root={root}' for s in ('val', 'test')
    ]
    return opts + [
        f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={interval}',
        f'default_hooks.checkpoint.interval={interval}',
        'default_hooks.logger.interval=1',
    ]


def _run(cmd, timeout=240, cwd=ROOT) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f'{" ".join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}'
    return proc.stdout


def _load(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


def _optimizer_steps(ckpt: dict) -> set:
    return {int(torch.as_tensor(st['step']).item()) for st in ckpt['optimizer']['state'].values() if 'step' in st}


def _train_tool():
    return load_tool('tools/train.py', 'ccformer_train_tool')


@pytest.fixture(scope='module')
def resumed_run(toy_s4_root, tmp_path_factory):
    """Start a long training run, SIGKILL it once a checkpoint exists, then ``--resume`` it for one more epoch."""
    work = str(tmp_path_factory.mktemp('resume'))
    cmd = [sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options'] + _data_opts(
        toy_s4_root, epochs=200
    )
    log = open(osp.join(work, 'interrupted.log'), 'w')
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    last = osp.join(work, 'last_checkpoint')
    deadline = time.time() + 180
    try:
        while not osp.isfile(last) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGSTOP)  # freeze the run where it is, then kill it
        assert osp.isfile(last), f'no checkpoint within 180 s; see {log.name}'
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL, 'the first run ended by itself instead of being interrupted'
    from projects.ccformer.engine.resume import find_resume_checkpoint

    with open(last) as f:
        source = find_resume_checkpoint(work)[0] or f.read().strip()
    interrupted = _load(source)
    done_epochs = interrupted['meta']['epoch']
    out = _run(
        [sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--resume', '--cfg-options']
        + _data_opts(toy_s4_root, epochs=done_epochs + 1)
    )
    return dict(work=work, out=out, done_epochs=done_epochs, interrupted_steps=_optimizer_steps(interrupted))


def test_resume_after_kill(resumed_run):
    """The killed run resumes from its last checkpoint: epoch, iteration and optimizer state continue."""
    out, k = resumed_run['out'], resumed_run['done_epochs']
    assert f'resumed epoch: {k}, iter: {k * ITERS_PER_EPOCH}' in out, out[-3000:]
    with open(osp.join(resumed_run['work'], 'last_checkpoint')) as f:
        final = _load(f.read().strip())
    assert final['meta']['epoch'] == k + 1
    assert final['meta']['iter'] == (k + 1) * ITERS_PER_EPOCH
    # AdamW counts its steps per parameter: a fresh optimizer would show only the iterations since the resume
    assert _optimizer_steps(final) == {(k + 1) * ITERS_PER_EPOCH}
    assert resumed_run['interrupted_steps'] == {k * ITERS_PER_EPOCH}
    # the config as trained (the tools that rebuild a trained model read it there), --cfg-options merged
    from mmengine.config import Config

    from projects.ccformer.utils import saved_config_path

    saved = Config.fromfile(saved_config_path(resumed_run['work'], CONFIG))
    assert saved.train_cfg.max_epochs == k + 1


def test_resume_skips_a_truncated_newest_checkpoint(resumed_run, toy_s4_root, tmp_path):
    """The newest checkpoint cut short (a plain CheckpointHook killed while saving, a copy cut short): --resume
    names it and continues from the newest complete one (before: CorruptCheckpointError)."""
    with open(osp.join(resumed_run['work'], 'last_checkpoint')) as f:
        good = f.read().strip()
    k = _load(good)['meta']['epoch']
    work = tmp_path / 'work'
    work.mkdir()
    shutil.copy(good, work / f'epoch_{k}.pth')
    data = open(good, 'rb').read()
    (work / f'epoch_{k + 1}.pth').write_bytes(data[: len(data) // 2])
    (work / 'last_checkpoint').write_text(str(work / f'epoch_{k + 1}.pth'))
    # save_best=None: the copied message hub names the other work dir's best checkpoint, which must not be touched
    out = _run(
        [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), '--resume', '--cfg-options']
        + _data_opts(toy_s4_root, epochs=k + 1)
        + ['default_hooks.checkpoint.save_best=None']
    )
    assert f'skipping {work}/epoch_{k + 1}.pth (named in last_checkpoint) is truncated or corrupt' in out, out[-3000:]
    assert f'resuming from {work}/epoch_{k}.pth, the newest complete checkpoint' in out
    assert f'resumed epoch: {k}, iter: {k * ITERS_PER_EPOCH}' in out
    assert _load(str(work / f'epoch_{k + 1}.pth'))['meta']['epoch'] == k + 1


def test_second_run_into_a_work_dir_in_use_is_refused(toy_s4_root, tmp_path):
    """Two tools/train.py into one --work-dir: the second stops at once naming the first (pid, host, command);
    before, both trained and every checkpoint held the second run's weights."""
    work = str(tmp_path / 'work')
    cmd = [sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options'] + _data_opts(
        toy_s4_root, epochs=200
    )
    log = open(tmp_path / 'first.log', 'w')
    first = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    lock = osp.join(work, '.train.lock')
    try:
        deadline = time.time() + 180
        while time.time() < deadline and first.poll() is None:
            if osp.isfile(lock) and f'"pid": {first.pid}' in open(lock).read():
                break
            time.sleep(0.1)
        assert first.poll() is None, open(tmp_path / 'first.log').read()[-3000:]
        second = subprocess.run(
            cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240
        )
        assert second.returncode != 0
        assert f'is in use by another training run: pid {first.pid} on host {socket.gethostname()}' in second.stdout
        assert 'tools/train.py' in second.stdout.split('is in use by another training run')[1]
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        log.close()


def test_best_checkpoint_by_val_miou(resumed_run):
    """CheckpointHook(save_best='mIoU') keeps a best checkpoint, and the validation logs AVSBenchMetric and the
    presence-gate check (``val/noise_masked``)."""
    best = glob.glob(osp.join(resumed_run['work'], 'best_mIoU_epoch_*.pth'))
    assert len(best) == 1, os.listdir(resumed_run['work'])
    ckpt = _load(best[0])
    assert 'best_score' in ckpt['message_hub']['runtime_info']
    assert ckpt['meta']['dataset_meta']['classes'] is not None
    scalars = glob.glob(osp.join(resumed_run['work'], '*', 'vis_data', 'scalars.json'))
    logged = [json.loads(line) for path in scalars for line in open(path)]
    assert any('mIoU' in entry for entry in logged)
    # the robust config's presence-gate check logs its figure next to the mIoU at every validation
    validations = [entry for entry in logged if 'mIoU' in entry]
    assert validations and all(0.0 <= entry['noise_masked'] <= 100.0 for entry in validations)
    logs = glob.glob(osp.join(resumed_run['work'], '*', '*.log'))
    assert any('Epoch(val)' in line and 'noise_masked: ' in line for path in logs for line in open(path))


def test_test_py_metrics_show_dir_and_out(resumed_run, toy_s4_root, tmp_path):
    """tools/test.py prints AVSBenchMetric results, --show-dir writes one clip image per test clip, --out masks."""
    best = glob.glob(osp.join(resumed_run['work'], 'best_mIoU_epoch_*.pth'))[0]
    show, out_dir = str(tmp_path / 'show'), str(tmp_path / 'preds')
    out = _run(
        [
            sys.executable,
            'tools/test.py',
            CONFIG,
            best,
            '--work-dir',
            str(tmp_path / 'w'),
            '--show-dir',
            show,
            '--out',
            out_dir,
            '--cfg-options',
        ]
        + _data_opts(toy_s4_root)
    )
    for key in METRIC_KEYS:
        assert f'{key}: ' in out, out[-2000:]
    images = sorted(glob.glob(osp.join(show, 'vis_data', 'vis_image', 'test_*.png')))
    assert len(images) == 2, images  # two toy test clips
    img = cv2.imread(images[0])
    assert img.shape == (2 * 64, 5 * 64, 3)  # prediction row + GT row, 5 frames of 64x64
    masks = sorted(glob.glob(osp.join(out_dir, '*', '*.png')))
    assert len(masks) == 2 * 5
    values = set()
    for m in masks:
        values |= set(cv2.imread(m, cv2.IMREAD_UNCHANGED).ravel().tolist())
    assert values <= {0, 255}


def test_ddp_two_processes_gloo(toy_s4_root, tmp_path):
    """tools/dist_train.sh runs 2 DDP processes on CPU (gloo chosen automatically without CUDA); each rank sees
    half of the data."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = _env()
    env['PORT'] = str(port)
    work = str(tmp_path / 'ddp')
    cmd = ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work, '--cfg-options'] + _data_opts(
        toy_s4_root, epochs=1
    )
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'Distributed training: True' in proc.stdout
    ckpt = _load(osp.join(work, 'epoch_1.pth'))
    # 3 clips split over 2 ranks (2 each with padding), batch 2 -> 1 iteration per epoch instead of 2
    assert ckpt['meta']['iter'] == 1


def test_configs_run_under_mmseg_tools(resumed_run, toy_s4_root, tmp_path):
    """mmsegmentation's own tools/train.py and tools/test.py (shipped in the package) run our config."""
    assert osp.isfile(osp.join(MMSEG_TOOLS, 'train.py'))
    work = str(tmp_path / 'mmseg_train')
    out = _run(
        [sys.executable, osp.join(MMSEG_TOOLS, 'train.py'), CONFIG, '--work-dir', work, '--cfg-options']
        + _data_opts(toy_s4_root, epochs=1),
        cwd=str(tmp_path),
    )
    assert osp.isfile(osp.join(work, 'epoch_1.pth')), out[-3000:]
    best = glob.glob(osp.join(resumed_run['work'], 'best_mIoU_epoch_*.pth'))[0]
    masks = tmp_path / 'mmseg_masks'
    out = _run(
        [
            sys.executable,
            osp.join(MMSEG_TOOLS, 'test.py'),
            CONFIG,
            best,
            '--work-dir',
            str(tmp_path / 'mmseg_test'),
            '--out',
            str(masks),
            '--cfg-options',
        ]
        + _data_opts(toy_s4_root),
        cwd=str(tmp_path),
    )
    for key in METRIC_KEYS:
        assert f'{key}: ' in out, out[-2000:]
    # mmseg's --out sets test_evaluator.output_dir: our metrics write the predicted masks there
    assert len(glob.glob(str(masks / '*' / '*_1.png'))) > 0, out[-2000:]


def test_amp_dtype_flag(tmp_path, capsys):
    """--amp keeps mmseg's fp16 AmpOptimWrapper; --amp --amp-dtype bfloat16 selects BF16OptimWrapper (no
    loss_scale); --amp-dtype without --amp is a parser error; an AMP wrapper in the config is kept."""
    tool = _train_tool()
    base = [CONFIG, '--work-dir', str(tmp_path)]
    cfg = tool.setup_cfg(tool.parse_args(base))
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    for extra in (['--amp'], ['--amp', '--amp-dtype', 'float16']):
        cfg = tool.setup_cfg(tool.parse_args(base + extra))
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg = tool.setup_cfg(tool.parse_args(base + ['--amp', '--amp-dtype', 'bfloat16']))
    assert cfg.optim_wrapper.type == 'BF16OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    for bad in (['--amp-dtype', 'bfloat16'], ['--amp', '--amp-dtype', 'float32']):
        with pytest.raises(SystemExit) as exc:
            tool.parse_args(base + bad)
        assert exc.value.code == 2
    assert '--amp-dtype needs --amp' in capsys.readouterr().err
    for wrapper in ('AmpOptimWrapper', 'BF16OptimWrapper'):
        cfg = tool.setup_cfg(
            tool.parse_args(
                base + ['--amp', '--amp-dtype', 'bfloat16', '--cfg-options', f'optim_wrapper.type={wrapper}']
            )
        )
        assert cfg.optim_wrapper.type == wrapper and 'loss_scale' not in cfg.optim_wrapper


def test_train_bf16_optim_wrapper(toy_s4_root, tmp_path):
    """tools/train.py --amp --amp-dtype bfloat16 trains the tiny config on CPU with BF16OptimWrapper: finite losses,
    and the checkpoint's optimizer state has no loss_scaler (it loads into plain OptimWrapper)."""
    work = str(tmp_path / 'bf16')
    out = _run(
        [
            sys.executable,
            'tools/train.py',
            CONFIG,
            '--work-dir',
            work,
            '--amp',
            '--amp-dtype',
            'bfloat16',
            '--cfg-options',
        ]
        + _data_opts(toy_s4_root, epochs=1)
    )
    assert "type='BF16OptimWrapper'" in out, out[-3000:]
    ckpt = _load(osp.join(work, 'epoch_1.pth'))
    assert ckpt['meta']['iter'] == ITERS_PER_EPOCH
    assert 'loss_scaler' not in ckpt['optimizer']
    assert _optimizer_steps(ckpt) == {ITERS_PER_EPOCH}
    scalars = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    losses = [json.loads(line)['loss'] for path in scalars for line in open(path) if '"loss"' in line]
    assert len(losses) == ITERS_PER_EPOCH and all(torch.isfinite(torch.tensor(losses))), losses


def test_compile_option_compiles_the_model_core(toy_s4_root, tmp_path):
    """`--cfg-options compile=...` (mmengine's switch) becomes model.compile_cfg: training runs the compiled core
    (dynamo with the 'eager' backend here; inductor on a GPU) and mmengine does not compile train_step."""
    tool = _train_tool()
    cfg = tool.setup_cfg(tool.parse_args([CONFIG, '--work-dir', str(tmp_path), '--cfg-options', 'compile=True']))
    assert cfg.model.compile_cfg is True and not cfg.compile
    cfg = tool.setup_cfg(tool.parse_args([CONFIG, '--work-dir', str(tmp_path)]))
    assert cfg.model.get('compile_cfg') is None and not cfg.get('compile')
    work = str(tmp_path / 'compiled')
    out = _run(
        [sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options', 'compile.backend=eager']
        + _data_opts(toy_s4_root, epochs=1)
    )
    assert "compiling CCFormer's tensor core" in out, out[-3000:]
    assert 'Model has been "compiled"' not in out  # mmengine's train_step compile stayed off
    scalars = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    losses = [json.loads(line)['loss'] for path in scalars for line in open(path) if '"loss"' in line]
    assert len(losses) == ITERS_PER_EPOCH and all(torch.isfinite(torch.tensor(losses))), losses


def test_compile_with_cuda_graphs_refuses_gradient_accumulation(tmp_path):
    """CUDA-graph compile modes cannot accumulate gradients (a replay overwrites them): a clear error; mmengine's
    FlexibleRunner-only `target` key is not passed on to torch.compile."""
    tool = _train_tool()
    base = [CONFIG, '--work-dir', str(tmp_path), '--cfg-options']
    with pytest.raises(ValueError, match='accumulative_counts=2'):
        tool.setup_cfg(tool.parse_args(base + ['compile.mode=reduce-overhead', 'optim_wrapper.accumulative_counts=2']))
    with pytest.raises(ValueError, match='CUDA graphs'):
        tool.setup_cfg(
            tool.parse_args(base + ['model.compile_cfg.backend=cudagraphs', 'optim_wrapper.accumulative_counts=4'])
        )
    cfg = tool.setup_cfg(
        tool.parse_args(
            base + ['compile.mode=default', 'compile.target=train_step', 'optim_wrapper.accumulative_counts=2']
        )
    )
    assert cfg.model.compile_cfg == dict(mode='default')


# ------------------------------------------------------------------------------------------------ bad inputs
def test_checkpoints_written_load_on_the_safe_path(resumed_run):
    """Every file tools/train.py writes (resume included) needs no global outside the safe loader's allowlist."""
    from projects.ccformer.engine.safe_checkpoint import checkpoint_safe_globals, load_checkpoint_file

    paths = glob.glob(osp.join(resumed_run['work'], '*.pth'))
    assert len(paths) >= 2
    for path in paths:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == [], path
        assert 'message_hub' in load_checkpoint_file(path)


def _resume_opts(root: str, epochs: int) -> list:
    # random flip (the config's ClipConsistentTransform), dropout in the query generator, 2 persistent workers
    return _data_opts(root, epochs=epochs) + [
        'default_hooks.checkpoint.max_keep_ckpts=-1',
        'train_dataloader.num_workers=2',
        'train_dataloader.persistent_workers=True',
        'model.decode_head.query_generator.ffn_drop=0.2',
    ]


def test_resume_is_bit_exact(toy_s4_root, tmp_path):
    """An uninterrupted 2-epoch run and a run resumed from its epoch-1 checkpoint end with identical weights, with
    random augmentation, dropout and 2 persistent data-loader workers (augmentation seeded by (seed, epoch, index),
    random layers by (seed, iteration)); the robust config's moving average of the weights (EMAHook) and the raw
    weights it keeps resume exactly too."""
    full, resumed = str(tmp_path / 'full'), str(tmp_path / 'resumed')
    _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', full, '--cfg-options'] + _resume_opts(toy_s4_root, 2))
    os.makedirs(resumed)
    src = osp.join(resumed, 'epoch_1.pth')
    with open(osp.join(full, 'epoch_1.pth'), 'rb') as f_in, open(src, 'wb') as f_out:
        f_out.write(f_in.read())
    with open(osp.join(resumed, 'last_checkpoint'), 'w') as f:
        f.write(src)  # the state of a run killed right after epoch 1
    out = _run(
        [sys.executable, 'tools/train.py', CONFIG, '--work-dir', resumed, '--resume', '--cfg-options']
        + _resume_opts(toy_s4_root, 2)
    )
    assert 'resumed epoch: 1' in out, out[-3000:]
    a, b = (_load(osp.join(d, 'epoch_2.pth'))['state_dict'] for d in (full, resumed))
    assert a.keys() == b.keys()
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert not changed, f'{len(changed)} tensors differ, e.g. {changed[:3]}'
    first = _load(src)['state_dict']
    assert any(not torch.equal(first[k], a[k]) for k in a)  # epoch 2 did train
    # the robust configs save the moving average of the weights (robust_ema) as the state_dict and keep the raw
    # weights (EMAHook's 'module.<name>') for resuming: those resume exactly too
    raw_a, raw_b = (_load(osp.join(d, 'epoch_2.pth'))['ema_state_dict'] for d in (full, resumed))
    assert all(torch.equal(raw_a[k], raw_b[k]) for k in raw_a)
    averaged = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], raw_a['module.' + k])]
    assert averaged, 'the saved state_dict should be the moving average, not the raw weights'


def test_non_finite_loss_stops_training_without_saving(toy_s4_root, tmp_path):
    """Epoch 1 trains normally; at epoch 2 the learning rate jumps to 1e30 and the loss turns NaN: training stops at
    that iteration naming the batch's clips, no checkpoint of the NaN model is written and last_checkpoint still
    names epoch_1.pth."""
    cfg = tmp_path / 'diverging.py'
    cfg.write_text(
        f"_base_ = ['{CONFIG}']\n"
        "param_scheduler = [dict(type='MultiStepLR', milestones=[1], gamma=1e33, by_epoch=True)]\n"
    )
    work = str(tmp_path / 'work')
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', str(cfg), '--work-dir', work, '--cfg-options']
        + _data_opts(toy_s4_root, epochs=3),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
    )
    assert proc.returncode != 0
    assert 'FloatingPointError: non-finite loss at iteration 4 (epoch 2)' in proc.stdout, proc.stdout[-3000:]
    ids = [
        row.split(',')[0]
        for row in open(osp.join(toy_s4_root, 's4_meta_data.csv')).read().split()[1:]
        if row.endswith(',train')
    ]
    assert any(video in proc.stdout.split('FloatingPointError')[-1] for video in ids)
    assert sorted(f for f in os.listdir(work) if f.endswith('.pth')) == ['best_mIoU_epoch_1.pth', 'epoch_1.pth']
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip() == osp.join(work, 'epoch_1.pth')
    state = _load(osp.join(work, 'epoch_1.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_rerun_into_a_finished_work_dir_is_refused(tmp_path):
    """tools/train.py without --resume into a work dir holding checkpoints stops before touching them; --resume
    continues; --overwrite deletes the earlier checkpoints first."""
    tool = _train_tool()
    files = {'epoch_5.pth': b'5', 'best_mIoU_epoch_4.pth': b'4', 'last_checkpoint': str(tmp_path / 'epoch_5.pth')}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / '20260101_000000').mkdir()  # logs of the earlier run
    stamps = {name: os.stat(tmp_path / name).st_mtime_ns for name in files}
    args = tool.parse_args([CONFIG, '--work-dir', str(tmp_path)])
    with pytest.raises(FileExistsError) as exc:
        tool.prepare_work_dir(tool.setup_cfg(args), args)
    msg = str(exc.value)
    assert str(tmp_path) in msg and 'epoch_5.pth' in msg
    assert '--resume' in msg and '--work-dir' in msg and '--overwrite' in msg
    assert {name: os.stat(tmp_path / name).st_mtime_ns for name in files} == stamps
    assert (tmp_path / 'epoch_5.pth').read_bytes() == b'5'
    assert tool.setup_cfg(tool.parse_args([CONFIG, '--work-dir', str(tmp_path), '--resume'])).resume
    args = tool.parse_args([CONFIG, '--work-dir', str(tmp_path), '--overwrite'])
    tool.prepare_work_dir(tool.setup_cfg(args), args)
    assert sorted(os.listdir(tmp_path)) == ['20260101_000000']


def test_cfg_options_typo_is_refused(tmp_path):
    """A top-level --cfg-options key that is neither in the config nor read by the Runner is a typo (train and
    test); nested keys and Runner keys the config does not set (compile, ...) are accepted."""
    train, test = _train_tool(), _test_tool()
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    for parse, setup in (
        (lambda o: train.parse_args([CONFIG, '--work-dir', str(tmp_path), '--cfg-options', o]), train.setup_cfg),
        (lambda o: test.parse_args([CONFIG, str(ckpt), '--cfg-options', o]), test.setup_cfg),
    ):
        with pytest.raises(KeyError, match="unknown top-level key 'trian_dataloader'.*'train_dataloader'"):
            setup(parse('trian_dataloader.batch_size=4'))
        assert setup(parse('train_dataloader.batch_size=4')).train_dataloader.batch_size == 4
        setup(parse('randomness.seed=3'))


def test_cfg_options_values_that_are_not_numbers_name_the_option(tmp_path):
    """`--cfg-options train_cfg.max_epochs=abc`: refused naming the option and what the config holds there (before:
    a TypeError deep inside mmengine's loop); numbers, lists and new keys pass."""
    train, test = _train_tool(), _test_tool()
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    for parse, setup in (
        (lambda o: train.parse_args([CONFIG, '--work-dir', str(tmp_path), '--cfg-options', o]), train.setup_cfg),
        (lambda o: test.parse_args([CONFIG, str(ckpt), '--cfg-options', o]), test.setup_cfg),
    ):
        for option, kind in (
            ('train_cfg.max_epochs=abc', 'a number'),
            ('optim_wrapper.optimizer.lr=abc', 'a number'),
            ('train_dataloader.persistent_workers=maybe', 'True or False'),
        ):
            key, value = option.split('=')
            with pytest.raises(ValueError, match=f'--cfg-options {key}={value}: {key} is {kind} in .*64x64.py'):
                setup(parse(option))
        cfg = setup(parse('optim_wrapper.optimizer.lr=3e-4'))
        assert cfg.optim_wrapper.optimizer.lr == 3e-4
        assert setup(parse('train_cfg.max_epochs=7')).train_cfg.max_epochs == 7


def test_test_py_out_naming_a_file_fails_first(tmp_path):
    tool = _test_tool()
    ckpt, out = tmp_path / 'c.pth', tmp_path / 'masks.txt'
    ckpt.write_bytes(b'')
    out.write_text('keep me')
    with pytest.raises(FileExistsError, match='--out .*masks.txt: this is an existing file'):
        tool.setup_cfg(tool.parse_args([CONFIG, str(ckpt), '--out', str(out)]))
    assert out.read_text() == 'keep me'
    with pytest.raises(FileNotFoundError, match=r'epoch_\*.pth and best_\*.pth'):
        tool.setup_cfg(tool.parse_args([CONFIG, str(tmp_path / 'missing.pth')]))


def _test_tool():
    return load_tool('tools/test.py', 'ccformer_test_tool')


def test_test_py_refuses_unsafe_foreign_and_truncated_checkpoints(resumed_run, toy_s4_root, tmp_path):
    """tools/test.py: a checkpoint with a pickled payload is refused without running it (the user's command line:
    nonzero exit, no metrics), one of another model is refused naming keys (scored only with
    --allow-partial-checkpoint), a truncated one names the file."""
    from projects.ccformer.engine.safe_checkpoint import CheckpointMismatchError, CorruptCheckpointError

    best = glob.glob(osp.join(resumed_run['work'], 'best_mIoU_epoch_*.pth'))[0]
    good = _load(best)
    marker = str(tmp_path / 'PWNED')

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    evil, foreign, truncated = (str(tmp_path / n) for n in ('evil.pth', 'foreign.pth', 'truncated.pth'))
    torch.save(dict(good, meta=dict(good['meta'], note=Payload())), evil)
    torch.save(
        dict(state_dict={'backbone.stem.weight': torch.zeros(3), 'cls.weight': torch.zeros(2)}, meta=good['meta']),
        foreign,
    )
    data = open(best, 'rb').read()
    with open(truncated, 'wb') as f:
        f.write(data[: len(data) // 3])
    opts = ['--work-dir', str(tmp_path / 'w'), '--cfg-options'] + _data_opts(toy_s4_root)

    proc = subprocess.run(
        [sys.executable, 'tools/test.py', CONFIG, evil] + opts,
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
    )
    assert proc.returncode != 0 and 'mIoU: ' not in proc.stdout
    assert f'UnsafeCheckpointError: refused to load checkpoint {evil}' in proc.stdout, proc.stdout[-2000:]
    assert 'posix.system' in proc.stdout and '--trust-checkpoint' in proc.stdout
    assert not osp.exists(marker)

    tool = _test_tool()
    with pytest.raises(CheckpointMismatchError) as exc:
        tool.main([CONFIG, foreign] + opts)
    msg = str(exc.value)
    assert f'checkpoint {foreign} does not fit the model built from {CONFIG}' in msg
    assert 'cls.weight' in msg and '--allow-partial-checkpoint' in msg
    metrics = tool.main([CONFIG, foreign, '--allow-partial-checkpoint'] + opts)
    assert 'mIoU' in metrics
    with pytest.raises(CorruptCheckpointError, match=f'checkpoint {truncated} .*truncated or corrupt'):
        tool.main([CONFIG, truncated] + opts)
