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
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')


def _run(cmd, timeout=300) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env['PYTHONPATH'] = ROOT  # the tool imports the installed package: make it this checkout's copy
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f'{" ".join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}'
    return proc.stdout


TRAIN_ROOT = 'data/some_other_family'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """An untrained tiny S4 model (seeded), saved as a checkpoint whose meta holds a training config (as
    mmengine's) reading ``TRAIN_ROOT``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import projects.ccformer  # noqa: F401
    from projects.ccformer.engine import set_data_root

    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    set_data_root(cfg, TRAIN_ROOT)
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(cfg=cfg.pretty_text, seed=5)), path)
    return path


@pytest.fixture(scope='module')
def recordings(tmp_path_factory):
    """A folder of 'real' recordings: two kinds never on screen in the toy data, one toy kind (left out where
    visible), one file of unknown kind; a 44.1 kHz stereo file among them."""
    import numpy as np
    import soundfile as sf

    root = tmp_path_factory.mktemp('recordings')
    t = np.arange(44100 * 2) / 44100
    for kind, freq in (('thunder', 90.0), ('waves', 400.0), ('red_circle', 330.0)):
        (root / kind).mkdir()
        sf.write(str(root / kind / 'take.flac'), 0.2 * np.sin(2 * np.pi * freq * t), 44100)
    sf.write(str(root / 'misc.wav'), np.stack([0.1 * np.sin(2 * np.pi * 700 * t)] * 2, axis=1), 44100)
    return str(root)


@pytest.fixture(scope='module')
def report(checkpoint, toy_s4_root, recordings, tmp_path_factory):
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
            '--offscreen-audio',
            recordings,
        ]
    )
    with open(work / 'r.json') as f:
        return dict(json.load(f), stdout=out, work=str(work))


def test_report_has_every_condition(report):
    conditions = report['conditions']
    assert list(conditions) == ['original', 'shuffled', 'silence', 'noise', 'offscreen', 'offscreen_recorded']
    for name, res in conditions.items():
        assert res['status'] == 'ok', res
        m = res['metrics']
        negative = name in ('silence', 'noise', 'offscreen', 'offscreen_recorded')
        assert res['ground_truth'] == ('empty' if negative else 'kept')
        # two toy test clips of 5 frames: all 10 frames are empty under negative audio
        assert m['num_empty_frames'] == (
            10 if negative else report['conditions']['original']['metrics']['num_empty_frames']
        )
        if negative:  # IoU of an empty frame is the background accuracy: 100 - pixel FPR
            assert m['mIoU'] == pytest.approx(100 - m['empty_fp_pixel_rate'], abs=1e-3)
            assert m['Fscore'] == 0.0
    combined = report['combined']
    neg = [conditions[c]['metrics'] for c in ('silence', 'noise', 'offscreen', 'offscreen_recorded')]
    fpr = sum(m['empty_fp_pixel_rate'] for m in neg) / 4
    miou = conditions['original']['metrics']['mIoU']
    assert combined['FPR'] == pytest.approx(fpr)
    assert combined['G_mIoU'] == pytest.approx(2 * miou * (100 - fpr) / (miou + 100 - fpr) if miou + 100 - fpr else 0)
    assert report['data_root'] and report['noise_dbfs'] == -20.0 and report['audio_seed'] == 0
    assert report['empty_output']['stays_empty'] in (True, False)
    assert '| silence | empty | - | - | 10 |' in report['stdout']
    assert report['empty_when_silent'] is True and 'rule:       the model empties' in report['stdout']  # robust config
    assert report['empty_output']['text'] in report['stdout']


def test_report_says_what_was_trained_and_tested_on(report, toy_s4_root, recordings):
    assert report['tested_on'] == dict(data_root=toy_s4_root, dataset_type='AVSBenchS4Dataset', split='test', clips=2)
    trained = report['trained_on']
    assert trained['known'] and trained['data_root'] == TRAIN_ROOT and trained['seed'] == 5
    assert trained['dataset_type'] == 'NegativeAudioDataset' or trained['dataset_type'].startswith('AVSBench')
    assert report['offscreen_audio'] == recordings
    assert report['sound_bank'] == dict(files=4, kinds=['', 'red_circle', 'thunder', 'waves'])
    assert f'trained on: {TRAIN_ROOT}' in report['stdout'] and 'another data root than the test' in report['stdout']


def test_console_ends_with_the_table_and_the_verdict_alone(report):
    """No config dump nor runner log lines on the console (they go to the log file); the table, then the verdict
    last; mIoU / F not shown where the ground truth is empty."""
    out = report['stdout'].rstrip('\n')
    verdict = report['empty_output']['text']
    assert out.endswith('\n\n' + verdict)
    before = out[: -len(verdict)].rstrip('\n').splitlines()
    table_start = next(i for i, line in enumerate(before) if line.startswith('| audio |'))
    assert before[-1].startswith('Combined (negative conditions: silence, noise, offscreen, offscreen_recorded')
    rows = [line for line in before[table_start + 2 :] if line.startswith('|')]
    assert [r.split('|')[1].strip() for r in rows] == [
        'original audio',
        'shuffled (another clip)',
        'silence',
        'noise',
        'off-screen sound',
        'off-screen recordings',
    ]
    for row in rows[2:]:
        assert row.split('|')[2:5] == [' empty ', ' - ', ' - '], row
    for noise in ('Config:', 'Epoch(test)', 'mIoU: ', 'model = dict('):
        assert noise not in out, noise
    # before the table: progress, warnings, mmengine's one checkpoint line, then what was tested
    heads = ('audio condition ', 'Loads checkpoint', 'Robustness of ', 'tested on: ', 'trained on: ', 'audio: ')
    for line in before[:table_start]:
        assert not line or line.startswith(heads + ('files: ', 'rule: ')) or ' - WARNING - ' in line, line
    assert before[table_start - 2].startswith('files: ')
    # the log file has them, each condition's figures on a line that names it
    logs = [osp.join(dp, f) for dp, _, fs in os.walk(report['work']) for f in fs if f.endswith('.log')]
    with open(logs[0]) as f:
        log = f.read()
    assert 'Config:' in log and 'Epoch(test)' in log
    assert 'audio condition silence (silence): ground truth empty (mIoU and F not defined); 10 empty' in log


def test_plot_written(report):
    import cv2

    png = osp.join(report['work'], 'r.png')
    image = cv2.imread(png)
    assert image is not None and image.ndim == 3 and image.shape[1] > 400
    assert f'plot {png}' in report['stdout']


@pytest.mark.parametrize('condition', ['noise', 'offscreen_recorded'])
def test_same_numbers_as_test_py(report, checkpoint, toy_s4_root, recordings, tmp_path, condition):
    """One condition through tools/test.py gives the figures of the robustness report (``--offscreen-audio DIR``
    for the recordings)."""
    work = tmp_path / 'w'
    flag = ['--offscreen-audio', recordings] if condition == 'offscreen_recorded' else ['--audio-condition', condition]
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
        ]
        + flag
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
