"""``tools/test.py --tta`` (flip TTA of the configs) and TensorBoard as an opt-in vis backend, end to end on the tiny
config and the shared toy S4 data, each run a subprocess as the user types it."""

import glob
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')


def _run(cmd, timeout=300) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONPATH=ROOT)
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f'{" ".join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}'
    return proc.stdout


def _metrics(log: str) -> dict:
    line = [ln for ln in log.splitlines() if 'Epoch(test)' in ln][-1]
    return {k: float(v) for k, v in re.findall(r'(\w+): ([-\d.]+)', line.split('Epoch(test)')[1])}


def test_test_py_tta_runs_the_flip_tta(toy_s4_root, tmp_path):
    from projects.ccformer.apis import init_avs_model

    torch.manual_seed(0)
    model = init_avs_model(CONFIG, None)
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    common = [sys.executable, 'tools/test.py', CONFIG, ckpt, '--data-root', toy_s4_root]
    plain = _metrics(_run(common + ['--work-dir', str(tmp_path / 'plain')]))
    log = _run(common + ['--work-dir', str(tmp_path / 'tta'), '--tta'])
    tta = _metrics(log)
    assert set(tta) >= {'mIoU', 'Fscore', 'maxFscore'} and 0 <= tta['mIoU'] <= 100
    assert tta != plain  # the mirrored view changed the (random) model's masks
    assert "type='AVSTTAModel'" in log  # the config the runner built: the model wrapped in the flip TTA


def _readme_section(title: str) -> str:
    with open(osp.join(ROOT, 'README.md')) as fh:
        text = fh.read()
    assert f'### {title}\n' in text, f'README.md has no section "{title}"'
    return re.split(r'\n#{2,3} ', text.split(f'### {title}\n', 1)[1], maxsplit=1)[0]


def test_tensorboard_backend_writes_events(toy_s4_root, tmp_path):
    """The config of one's own that README "Logging to TensorBoard" shows (TensorboardVisBackend next to the local
    one), run as written: a short training run writes TensorBoard event files with the loss and the validation
    mIoU."""
    pytest.importorskip('tensorboard', reason='TensorBoard is optional: pip install -r requirements/optional.txt')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    snippet = re.search(r'```python\n(.*?)```', _readme_section('Logging to TensorBoard'), re.S).group(1)
    assert "'configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py'" in snippet
    user_cfg = tmp_path / 'my_config.py'  # the README's path is relative to the repository, as the user's file is
    user_cfg.write_text(snippet.replace("'configs/", repr(osp.join(ROOT, 'configs', ''))[:-1]))
    work = tmp_path / 'work'
    opts = [
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'default_hooks.logger.interval=1',
        f'train_dataloader.dataset.dataset.data_root={toy_s4_root}',
        f'val_dataloader.dataset.data_root={toy_s4_root}',
        f'test_dataloader.dataset.data_root={toy_s4_root}',
    ]
    _run([sys.executable, 'tools/train.py', str(user_cfg), '--work-dir', str(work), '--cfg-options'] + opts)
    events = glob.glob(str(work / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert events, sorted(glob.glob(str(work / '**'), recursive=True))
    acc = EventAccumulator(osp.dirname(events[0]))
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'loss', 'mIoU'} <= tags, tags
    assert glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))  # the local backend still writes


def test_one_flag_swaps_in_tensorboard():
    """The one-flag form of the README: ``--cfg-options visualizer.vis_backends.0.type=TensorboardVisBackend``."""
    key, value = re.search(r'--cfg-options (visualizer\.\S+)=(\w+)', _readme_section('Logging to TensorBoard')).groups()
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({key: value})
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['TensorboardVisBackend']
