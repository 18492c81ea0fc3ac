"""tools/analysis_tools/robustness.py end to end (a subprocess, the user's command) on the toy S4 test split, and its
agreement with ``tools/test.py --audio-condition``."""

import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny_1xb2-toy_avsbench-s4-64x64.py')


def _run(cmd, timeout=300) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env['PYTHONPATH'] = ROOT  # the tool imports the installed package: make it this checkout's copy
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f'{" ".join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}'
    return proc.stdout


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """An untrained tiny S4 model (seeded), saved as a checkpoint."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import projects.ccformer  # noqa: F401

    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


@pytest.fixture(scope='module')
def report(checkpoint, toy_s4_root, tmp_path_factory):
    work = tmp_path_factory.mktemp('robustness')
    out = _run(
        [
            sys.executable,
            'tools/analysis_tools/robustness.py',
            CONFIG,
            checkpoint,
            '--data-root',
            toy_s4_root,
            '--work-dir',
            str(work),
            '--out',
            str(work / 'r.json'),
        ]
    )
    with open(work / 'r.json') as f:
        return dict(json.load(f), stdout=out)


def test_report_has_every_condition(report):
    conditions = report['conditions']
    assert list(conditions) == ['original', 'shuffled', 'silence', 'noise', 'offscreen']
    for name, res in conditions.items():
        assert res['status'] == 'ok', res
        m = res['metrics']
        negative = name in ('silence', 'noise', 'offscreen')
        assert res['ground_truth'] == ('empty' if negative else 'kept')
        # two toy test clips of 5 frames: all 10 frames are empty under negative audio
        assert m['num_empty_frames'] == (
            10 if negative else report['conditions']['original']['metrics']['num_empty_frames']
        )
        if negative:  # IoU of an empty frame is the background accuracy: 100 - pixel FPR
            assert m['mIoU'] == pytest.approx(100 - m['empty_fp_pixel_rate'], abs=1e-3)
            assert m['Fscore'] == 0.0
    combined = report['combined']
    neg = [conditions[c]['metrics'] for c in ('silence', 'noise', 'offscreen')]
    fpr = sum(m['empty_fp_pixel_rate'] for m in neg) / 3
    miou = conditions['original']['metrics']['mIoU']
    assert combined['FPR'] == pytest.approx(fpr)
    assert combined['G_mIoU'] == pytest.approx(2 * miou * (100 - fpr) / (miou + 100 - fpr) if miou + 100 - fpr else 0)
    assert report['data_root'] and report['noise_dbfs'] == -20.0 and report['audio_seed'] == 0
    assert report['empty_output']['stays_empty'] in (True, False)
    assert '| silence | empty | - | - | 10 |' in report['stdout']
    assert report['empty_output']['text'] in report['stdout']


@pytest.mark.parametrize('condition', ['noise'])
def test_same_numbers_as_test_py(report, checkpoint, toy_s4_root, tmp_path, condition):
    """One condition through tools/test.py gives the figures of the robustness report."""
    work = tmp_path / 'w'
    _run(
        [
            sys.executable,
            'tools/test.py',
            CONFIG,
            checkpoint,
            '--data-root',
            toy_s4_root,
            '--work-dir',
            str(work),
            '--audio-condition',
            condition,
        ]
    )
    logs = [
        osp.join(dp, f)
        for dp, _, files in os.walk(work)
        for f in files
        if f.endswith('.json') and not f.startswith('scalars')
    ]
    with open(logs[0]) as f:
        metrics = json.loads(f.readline())
    expected = report['conditions'][condition]['metrics']
    for key in ('mIoU', 'empty_fp_rate', 'empty_fp_pixel_rate', 'num_empty_frames'):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-4), key
