"""Negative-audio evaluation helpers: combined scores, the table, the words, and the per-condition test run."""

import os
import os.path as osp

import pytest
from mmengine.config import Config

from projects.ccformer.datasets import AudioConditionDataset
from projects.ccformer.evaluation import robustness as R


def ok(**metrics):
    return dict(status='ok', metrics=metrics)


RESULTS = dict(
    original=ok(mIoU=60.0, Fscore=70.0, empty_fp_rate=50.0, empty_fp_pixel_rate=4.0, num_empty_frames=4),
    shuffled=ok(mIoU=40.0, Fscore=50.0, empty_fp_rate=75.0, empty_fp_pixel_rate=6.0, num_empty_frames=4),
    silence=ok(mIoU=90.0, Fscore=0.0, empty_fp_rate=20.0, empty_fp_pixel_rate=10.0, num_empty_frames=10),
    noise=ok(mIoU=80.0, Fscore=0.0, empty_fp_rate=40.0, empty_fp_pixel_rate=20.0, num_empty_frames=10),
    offscreen=dict(status='n/a', reason='what clip x shows is unknown'),
)


def test_combined_scores_by_hand():
    c = R.combined_scores(RESULTS)
    assert c['negative_conditions'] == ['silence', 'noise']  # off-screen was not measured
    assert c['FPR'] == pytest.approx(15.0) and c['frame_FPR'] == pytest.approx(30.0)
    assert c['G_mIoU'] == pytest.approx(2 * 60 * 85 / (60 + 85))  # HM(mIoU, 100 - FPR)
    assert c['G_F'] == pytest.approx(2 * 70 * 85 / (70 + 85))
    assert c['G_mIoU_frame'] == pytest.approx(2 * 60 * 70 / (60 + 70))  # HM(mIoU, 100 - frame FPR)
    assert c['G_F_frame'] == pytest.approx(70.0)
    full = dict(RESULTS, offscreen=ok(empty_fp_rate=90.0, empty_fp_pixel_rate=60.0, num_empty_frames=10))
    c = R.combined_scores(full)
    assert c['FPR'] == pytest.approx(30.0) and c['G_mIoU'] == pytest.approx(2 * 60 * 70 / 130)


def test_combined_scores_need_both_sides():
    c = R.combined_scores(dict(original=RESULTS['original']))
    assert c['negative_conditions'] == [] and c['FPR'] is None and c['G_mIoU'] is None
    c = R.combined_scores(dict(silence=RESULTS['silence']))
    assert c['FPR'] == 10.0 and c['G_F'] is None
    assert R.harmonic_mean(0.0, 0.0) == 0.0 and R.harmonic_mean(100.0, 100.0) == 100.0
    # a metric prefix (evaluator(prefix=...)) is found too
    prefixed = dict(
        original=ok(**{'avs/mIoU': 50.0, 'avs/Fscore': 50.0}),
        silence=ok(**{'avs/empty_fp_rate': 0.0, 'avs/empty_fp_pixel_rate': 0.0}),
    )
    assert R.combined_scores(prefixed)['G_mIoU'] == pytest.approx(2 * 50 * 100 / 150)


def test_empty_output_summary_words():
    s = R.empty_output_summary(RESULTS)
    assert s['stays_empty'] is False  # 50% > 20%, 20% > 5%, 40% > 10%
    assert s['masked_percent'] == dict(original=50.0, silence=20.0, noise=40.0)
    assert 'stay empty when nothing on screen sounds? no' in s['text']
    assert 'stays empty on 50.0% of the 4 silent or off-screen frames (a mask on 2 of them)' in s['text']
    assert '20.0% with silence, 40.0% with noise' in s['text']
    assert 'Off-screen sound: not measured (what clip x shows is unknown)' in s['text']
    assert s['text'].endswith('Where something on screen sounds (true audio) it scores mIoU 60.0, F 70.0.')
    good = {
        c: ok(empty_fp_rate=r, num_empty_frames=10)
        for c, r in dict(original=10.0, silence=5.0, noise=0.0, offscreen=20.0).items()
    }
    s = R.empty_output_summary(good)
    assert s['stays_empty'] is True and 'sounds? yes' in s['text']
    # a model that never predicts a mask stays empty too: the text says it also misses the sounding objects
    blind = dict(good, original=ok(mIoU=12.5, Fscore=0.0, empty_fp_rate=0.0, num_empty_frames=5))
    assert R.empty_output_summary(blind)['text'].endswith('mIoU 12.5, F 0.0: it segments nothing there either.')
    # no frame with empty ground truth: nothing to judge
    assert (
        R.empty_output_summary(dict(original=ok(mIoU=1.0, empty_fp_rate=0.0, num_empty_frames=0)))['stays_empty']
        is None
    )


def test_format_table():
    table = R.format_table(RESULTS, R.combined_scores(RESULTS))
    lines = table.splitlines()
    assert lines[2] == '| original audio | kept | 60.0 | 70.0 | 4 | 50.0 | 4.00 |'
    assert lines[4] == '| silence | empty | - | - | 10 | 20.0 | 10.00 |'  # mIoU / F mean nothing here
    assert lines[6].startswith('| off-screen sound | | n/a') and 'unknown' in lines[6]
    assert 'G-mIoU 70.3' in table and 'frame-level G-mIoU 64.6' in table


def test_check_conditions():
    assert R.check_conditions(['noise', 'original', 'noise']) == ['original', 'noise']
    with pytest.raises(ValueError, match='unknown'):
        R.check_conditions(['original', 'music'])
    with pytest.raises(ValueError, match='unknown'):
        R.audio_condition_dataset(dict(type='X'), 'music')
    assert R.audio_condition_dataset('ds', 'original') == 'ds'
    assert R.audio_condition_dataset('ds', 'noise', 3, -30) == dict(
        type='AudioConditionDataset', dataset='ds', condition='noise', seed=3, noise_dbfs=-30.0
    )


class _FakeLoop:
    def __init__(self, runner, dataset):
        self.runner, self.dataset = runner, dataset

    def run(self):
        self.runner.calls.append('run')
        self.runner.tested.append(self.dataset)
        empty = isinstance(self.dataset, AudioConditionDataset) and self.dataset.condition != 'shuffled'
        return dict(mIoU=0.0 if empty else 50.0, empty_fp_rate=100.0, num_empty_frames=10 if empty else 2)


class _FakeRunner:
    """What evaluate_audio_conditions uses of a Runner: ``cfg``, hooks, ``load_or_resume`` and ``test_loop``."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._test_loop = None
        self.tested, self.calls = [], []

    def call_hook(self, name):
        self.calls.append(name)

    def load_or_resume(self):
        self.calls.append('load')

    @property
    def test_loop(self):
        return self._test_loop


def test_evaluate_audio_conditions_builds_the_test_set_once(make_toy_root, monkeypatch):
    """One base dataset wrapped per condition (seed and noise level passed on); off-screen without kinds is n/a."""
    from mmengine.registry import init_default_scope

    init_default_scope('mmseg')
    root = make_toy_root('ms3', {'train': 1, 'val': 1, 'test': 2})
    os.remove(osp.join(root, 'clip_kinds.json'))
    cfg = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(
                    type='AVSBenchMS3Dataset',
                    data_root=root,
                    split='test',
                    test_mode=True,
                    pipeline=[dict(type='LoadAVSAudio'), dict(type='PackAVSInputs')],
                )
            )
        )
    )
    monkeypatch.setattr(R, '_test_loop', _FakeLoop)
    runner = _FakeRunner(cfg)
    results = R.evaluate_audio_conditions(
        runner, ['offscreen', 'noise', 'original', 'shuffled'], seed=7, noise_dbfs=-33
    )
    assert list(results) == ['original', 'shuffled', 'noise', 'offscreen']
    # one before_run / checkpoint load / after_run around the three test loops (off-screen could not be built)
    assert runner.calls == ['before_run', 'load', 'run', 'run', 'run', 'after_run']
    base = runner.tested[0]
    assert type(base).__name__ == 'AVSBenchMS3Dataset'
    assert [(d.condition, d.seed, d.dataset is base) for d in runner.tested[1:]] == [
        ('shuffled', 7, True),
        ('noise', 7, True),
    ]
    assert runner.tested[2].noise_dbfs == -33.0
    assert results['noise'] == dict(
        status='ok', ground_truth='empty', clips=2, metrics=dict(mIoU=0.0, empty_fp_rate=100.0, num_empty_frames=10)
    )
    assert results['original']['ground_truth'] == 'kept'
    assert results['offscreen']['status'] == 'n/a' and 'clip_kinds.json' in results['offscreen']['reason']


def test_evaluate_off_screen_recordings_one_bank(make_toy_root, monkeypatch, tmp_path):
    """offscreen_recorded wraps the test set with one SoundBank (built once); it needs the recordings."""
    import numpy as np
    import soundfile as sf
    from mmengine.registry import init_default_scope

    init_default_scope('mmseg')
    root = make_toy_root('s4', {'train': 1, 'val': 1, 'test': 2})
    (tmp_path / 'rec' / 'thunder').mkdir(parents=True)
    sf.write(str(tmp_path / 'rec' / 'thunder' / 't.wav'), 0.2 * np.sin(np.arange(20000) / 7.0), 16000)
    dataset = dict(type='AVSBenchS4Dataset', data_root=root, split='test', test_mode=True, pipeline=[])
    runner = _FakeRunner(Config(dict(test_dataloader=dict(dataset=dataset))))
    monkeypatch.setattr(R, '_test_loop', _FakeLoop)
    with pytest.raises(ValueError, match='--offscreen-audio'):
        R.evaluate_audio_conditions(runner, ['offscreen_recorded'])
    results = R.evaluate_audio_conditions(runner, ['offscreen_recorded', 'silence'], sound_bank=str(tmp_path / 'rec'))
    assert list(results) == ['silence', 'offscreen_recorded']
    assert results['offscreen_recorded']['ground_truth'] == 'empty'
    recorded = runner.tested[-1]
    assert recorded.condition == 'offscreen_recorded' and recorded.sound_bank.kinds == ('thunder',)
    assert R.combined_scores(results)['negative_conditions'] == ['silence', 'offscreen_recorded']
    with pytest.raises(ValueError, match='--offscreen-audio'):
        R.audio_condition_dataset('ds', 'offscreen_recorded')
    assert R.audio_condition_dataset('ds', 'offscreen_recorded', 1, -20, 'rec')['sound_bank'] == 'rec'


def test_combined_gaps_and_labelled_condition_lines():
    c = R.combined_scores(RESULTS)
    assert c['mIoU_gap'] == pytest.approx(20.0) and c['Fscore_gap'] == pytest.approx(20.0)
    assert R.combined_scores(dict(original=RESULTS['original']))['mIoU_gap'] is None
    line = R.condition_line('silence', RESULTS['silence'])
    assert line.startswith('silence (silence): ground truth empty (mIoU and F not defined)')
    assert 'mIoU 90' not in line and '10 empty-ground-truth frames, 20.0% of them with a mask' in line
    assert R.condition_line('shuffled', RESULTS['shuffled']).startswith('shuffled (shuffled (another clip)): mIoU 40.0')
    assert 'not measured' in R.condition_line('offscreen', RESULTS['offscreen'])
    assert 'Listening (true - shuffled audio): mIoU gap 20.0, F gap 20.0.' in R.format_table(RESULTS, c)


def _report(**info):
    return R.robustness_report(RESULTS, config='c.py', checkpoint='x.pth', audio_seed=0, noise_dbfs=-20.0, **info)


def test_format_report_puts_the_table_then_the_verdict_last():
    from projects.ccformer.evaluation.robustness_report import format_report

    report = _report(
        tested_on=dict(data_root='data/b', dataset_type='AVSBenchMS3Dataset', split='test', clips=2),
        trained_on=dict(known=True, data_root='data/a', dataset_type='AVSBenchMS3Dataset', split='train', seed=3),
    )
    text = format_report(report, dict(report='r.json', plot='r.png', log='x.log'))
    lines = text.splitlines()
    assert lines[0] == 'Robustness of x.pth (c.py)'
    assert lines[1] == 'tested on:  data/b (AVSBenchMS3Dataset, test split, 2 clips)'
    assert lines[2].startswith('trained on: data/a (AVSBenchMS3Dataset, train split), seed 3; from the checkpoint')
    assert 'another data root than the test' in lines[2]
    assert 'files:      report r.json, plot r.png, log x.log' in lines
    table = R.format_table(RESULTS, report['combined'])
    assert text.endswith('\n\n' + table + '\n\n' + report['empty_output']['text'])
    same = format_report(_report(tested_on=dict(data_root='d'), trained_on=dict(known=True, data_root='d')))
    assert 'the same data root as the test' in same
    unknown = format_report(_report(trained_on=dict(known=False, reason='no meta.cfg')))
    assert 'trained on: unknown (no meta.cfg)' in unknown
    assert 'rule:' not in text
    ruled = format_report(_report(empty_when_silent=True))
    assert 'rule:       the model empties every frame whose audio is digital silence' in ruled


def test_plot_is_a_png(tmp_path):
    import cv2
    import numpy as np

    from projects.ccformer.evaluation.robustness_report import plot_report

    path = plot_report(_report(), str(tmp_path / 'r.png'))
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    image = cv2.imread(path)
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 400
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 3  # bars and text, not a blank canvas


def test_trained_on_reads_the_checkpoint_config_without_running_it(tmp_path):
    import torch

    from projects.ccformer.evaluation.robustness_report import config_text_values, trained_on

    text = (
        "data_root = 'data/a'\n"
        "train_dataloader = dict(batch_size=2, dataset=dict(type='NegativeAudioDataset', prob=0.5, "
        "dataset=dict(type='AVSBenchS4Dataset', data_root='data/train_root', split='train')))\n"
        'train_cfg = dict(max_epochs=24, val_interval=-1)\n'
        "evil = __import__('os').system('touch ' + 'PWNED')\n"
    )
    values = config_text_values(text)
    assert values['evil'] is None and values['train_cfg'] == dict(max_epochs=24, val_interval=-1)
    path = str(tmp_path / 'm.pth')
    torch.save(dict(state_dict={}, meta=dict(cfg=text, seed=7, experiment_name='e')), path)
    info = trained_on(path)
    assert info == dict(
        known=True,
        data_root='data/train_root',
        dataset_type='AVSBenchS4Dataset',
        split='train',
        seed=7,
        max_epochs=24,
        experiment_name='e',
    )
    assert not os.path.exists('PWNED')
    torch.save(dict(state_dict={}, meta=dict()), path)
    assert trained_on(path) == dict(known=False, reason='the checkpoint holds no training config (meta.cfg)')
