"""End-to-end tests of tools/train.py, tools/test.py, tools/dist_train.sh and mmseg's own tools on the tiny config.

Every run is a subprocess, exactly the user's command line. The tiny config trains 2 iterations per epoch on the
shared toy S4 data (3 train clips, batch 2).
"""
import glob
import importlib.util
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import cv2
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny_1xb2-toy_avsbench-s4-64x64.py')
MMSEG_TOOLS = osp.join(osp.dirname(__import__('mmseg').__file__), '.mim', 'tools')
ITERS_PER_EPOCH = 2  # 3 toy train clips, batch 2, no drop_last
METRIC_KEYS = ('mIoU', 'Fscore', 'maxFscore', 'legacy_mIoU', 'legacy_Fscore')


def _env(pythonpath: bool = False) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    # as in an activated environment: `python` in the shell scripts is this interpreter (make test does not activate)
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env.pop('PYTHONPATH', None)
    if pythonpath:
        env['PYTHONPATH'] = ROOT
    return env


def _data_opts(root: str, epochs: int = 1, interval: int = 1) -> list:
    opts = [f'{s}_dataloader.dataset.data_root={root}' for s in ('train', 'val', 'test')]
    return opts + [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={interval}',
                   f'default_hooks.checkpoint.interval={interval}', 'default_hooks.logger.interval=1']


def _run(cmd, timeout=240, pythonpath=False, cwd=ROOT) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(pythonpath), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f'{" ".join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}'
    return proc.stdout


def _load(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


def _optimizer_steps(ckpt: dict) -> set:
    return {int(torch.as_tensor(st['step']).item()) for st in ckpt['optimizer']['state'].values() if 'step' in st}


def _train_tool():
    spec = importlib.util.spec_from_file_location('ccformer_train_tool', osp.join(ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resume_fallback_when_last_checkpoint_was_deleted(tmp_path):
    """A run killed while CheckpointHook swaps files leaves last_checkpoint naming a deleted file."""
    tool = _train_tool()
    assert tool.resume_fallback(str(tmp_path)) is None                     # nothing recorded: mmengine decides
    for name in ('epoch_2.pth', 'epoch_10.pth', 'best_mIoU_epoch_9.pth'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_10.pth'))
    assert tool.resume_fallback(str(tmp_path)) is None                     # the named file exists
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_11.pth'))
    assert tool.resume_fallback(str(tmp_path)) == str(tmp_path / 'epoch_10.pth')


@pytest.fixture(scope='module')
def resumed_run(toy_s4_root, tmp_path_factory):
    """Start a long training run, SIGKILL it once a checkpoint exists, then ``--resume`` it for one more epoch."""
    work = str(tmp_path_factory.mktemp('resume'))
    cmd = [sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options'] + \
        _data_opts(toy_s4_root, epochs=200)
    log = open(osp.join(work, 'interrupted.log'), 'w')
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    last = osp.join(work, 'last_checkpoint')
    deadline = time.time() + 180
    try:
        while not osp.isfile(last) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGSTOP)            # freeze the run where it is, then kill it
        assert osp.isfile(last), f'no checkpoint within 180 s; see {log.name}'
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL, 'the first run ended by itself instead of being interrupted'
    with open(last) as f:
        source = _train_tool().resume_fallback(work) or f.read().strip()
    interrupted = _load(source)
    done_epochs = interrupted['meta']['epoch']
    out = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--resume', '--cfg-options'] +
               _data_opts(toy_s4_root, epochs=done_epochs + 1))
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


def test_best_checkpoint_by_val_miou(resumed_run):
    """CheckpointHook(save_best='mIoU') keeps a best checkpoint, and the validation logs AVSBenchMetric."""
    best = glob.glob(osp.join(resumed_run['work'], 'best_mIoU_epoch_*.pth'))
    assert len(best) == 1, os.listdir(resumed_run['work'])
    ckpt = _load(best[0])
    assert 'best_score' in ckpt['message_hub']['runtime_info']
    assert ckpt['meta']['dataset_meta']['classes'] is not None
    scalars = glob.glob(osp.join(resumed_run['work'], '*', 'vis_data', 'scalars.json'))
    logged = [json.loads(line) for path in scalars for line in open(path)]
    assert any('mIoU' in entry for entry in logged)


def test_test_py_metrics_show_dir_and_out(resumed_run, toy_s4_root, tmp_path):
    """tools/test.py prints AVSBenchMetric results, --show-dir writes one clip image per test clip, --out masks."""
    best = glob.glob(osp.join(resumed_run['work'], 'best_mIoU_epoch_*.pth'))[0]
    show, out_dir = str(tmp_path / 'show'), str(tmp_path / 'preds')
    out = _run([sys.executable, 'tools/test.py', CONFIG, best, '--work-dir', str(tmp_path / 'w'), '--show-dir', show,
                '--out', out_dir, '--cfg-options'] + _data_opts(toy_s4_root))
    for key in METRIC_KEYS:
        assert f'{key}: ' in out, out[-2000:]
    images = sorted(glob.glob(osp.join(show, 'vis_data', 'vis_image', 'test_*.png')))
    assert len(images) == 2, images                     # two toy test clips
    img = cv2.imread(images[0])
    assert img.shape == (2 * 64, 5 * 64, 3)             # prediction row + GT row, 5 frames of 64x64
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
    cmd = ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work, '--cfg-options'] + \
        _data_opts(toy_s4_root, epochs=1)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'Distributed training: True' in proc.stdout
    ckpt = _load(osp.join(work, 'epoch_1.pth'))
    # 3 clips split over 2 ranks (2 each with padding), batch 2 -> 1 iteration per epoch instead of 2
    assert ckpt['meta']['iter'] == 1


def test_configs_run_under_mmseg_tools(resumed_run, toy_s4_root, tmp_path):
    """mmsegmentation's own tools/train.py and tools/test.py (shipped in the package) run our config."""
    assert osp.isfile(osp.join(MMSEG_TOOLS, 'train.py'))
    work = str(tmp_path / 'mmseg_train')
    out = _run([sys.executable, osp.join(MMSEG_TOOLS, 'train.py'), CONFIG, '--work-dir', work, '--cfg-options'] +
               _data_opts(toy_s4_root, epochs=1), pythonpath=True, cwd=str(tmp_path))
    assert osp.isfile(osp.join(work, 'epoch_1.pth')), out[-3000:]
    best = glob.glob(osp.join(resumed_run['work'], 'best_mIoU_epoch_*.pth'))[0]
    masks = tmp_path / 'mmseg_masks'
    out = _run([sys.executable, osp.join(MMSEG_TOOLS, 'test.py'), CONFIG, best, '--work-dir',
                str(tmp_path / 'mmseg_test'), '--out', str(masks), '--cfg-options'] + _data_opts(toy_s4_root),
               pythonpath=True, cwd=str(tmp_path))
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
        cfg = tool.setup_cfg(tool.parse_args(base + ['--amp', '--amp-dtype', 'bfloat16', '--cfg-options',
                                                     f'optim_wrapper.type={wrapper}']))
        assert cfg.optim_wrapper.type == wrapper and 'loss_scale' not in cfg.optim_wrapper


def test_train_bf16_optim_wrapper(toy_s4_root, tmp_path):
    """tools/train.py --amp --amp-dtype bfloat16 trains the tiny config on CPU with BF16OptimWrapper: finite losses,
    and the checkpoint's optimizer state has no loss_scaler (it loads into plain OptimWrapper)."""
    work = str(tmp_path / 'bf16')
    out = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work, '--amp', '--amp-dtype', 'bfloat16',
                '--cfg-options'] + _data_opts(toy_s4_root, epochs=1))
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
    out = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
                '--cfg-options', 'compile.backend=eager'] + _data_opts(toy_s4_root, epochs=1))
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
        tool.setup_cfg(tool.parse_args(base + ['compile.mode=reduce-overhead',
                                               'optim_wrapper.accumulative_counts=2']))
    with pytest.raises(ValueError, match='CUDA graphs'):
        tool.setup_cfg(tool.parse_args(base + ['model.compile_cfg.backend=cudagraphs',
                                               'optim_wrapper.accumulative_counts=4']))
    cfg = tool.setup_cfg(tool.parse_args(base + ['compile.mode=default', 'compile.target=train_step',
                                                 'optim_wrapper.accumulative_counts=2']))
    assert cfg.model.compile_cfg == dict(mode='default')
