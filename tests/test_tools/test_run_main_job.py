"""The main job's summary (tools/run_main_job.py): the silent-frame false-positive rate, the negative-audio table and
the verdict in words, from the metrics of tools/test.py and the report of tools/analysis_tools/robustness.py."""

import os
import os.path as osp

import pytest
from _tools import load_tool

from projects.ccformer.evaluation.robustness import robustness_report


@pytest.fixture(scope='module')
def job():
    return load_tool('tools/run_main_job.py', 'ccformer_main_job')


def _ok(**metrics):
    return dict(status='ok', metrics=metrics)


TRUE = dict(
    mIoU=62.0,
    Fscore=70.0,
    maxFscore=71.0,
    legacy_mIoU=62.0,
    legacy_Fscore=71.0,
    empty_fp_rate=70.0,
    empty_fp_pixel_rate=6.5,
    num_empty_frames=10.0,
)
SHUFFLED = dict(TRUE, mIoU=20.0, empty_fp_rate=80.0)
CONDITIONS = dict(
    original=_ok(**TRUE),
    shuffled=_ok(**SHUFFLED),
    silence=_ok(mIoU=99.0, Fscore=0.0, empty_fp_rate=2.5, empty_fp_pixel_rate=1.0, num_empty_frames=40.0),
    noise=_ok(mIoU=97.0, Fscore=0.0, empty_fp_rate=7.5, empty_fp_pixel_rate=3.0, num_empty_frames=40.0),
    offscreen=_ok(mIoU=95.0, Fscore=0.0, empty_fp_rate=30.0, empty_fp_pixel_rate=5.0, num_empty_frames=40.0),
)


def _summary(job, conditions=CONDITIONS, true=TRUE):
    report = robustness_report(conditions, config='c.py', checkpoint='x.pth')
    summary = dict(
        config='c.py',
        schedule='30 epochs',
        checkpoint='work/best.pth',
        seed=0,
        num_videos=[48, 8, 8],
        test_true_audio=true,
        test_shuffled_audio=SHUFFLED,
        mIoU_gap=true['mIoU'] - SHUFFLED['mIoU'],
        **job.negative_audio_summary(true, report, 'work/robustness.json'),
        video_demo=dict(video='v.mp4', masks='m', overlay='o.mp4', mIoU_vs_gt=50.0),
        overlay_images=8,
        overlay_dir='vis',
        timings_s=dict(train=1.0),
        total_s=2.0,
        command='python tools/run_main_job.py',
    )
    return summary


def test_summary_fields(job):
    s = _summary(job)
    assert s['silent_frames'] == dict(num_frames=10, masked_percent=70.0, empty_percent=30.0, pixel_percent=6.5)
    assert list(s['negative_audio']['conditions']) == ['original', 'shuffled', 'silence', 'noise', 'offscreen']
    assert s['negative_audio']['report'] == 'work/robustness.json'
    combined = s['negative_audio']['combined']
    assert combined['FPR'] == pytest.approx(3.0)  # (1 + 3 + 5) / 3
    assert combined['G_mIoU'] == pytest.approx(2 * 62 * 97 / (62 + 97))
    # 70% of silent frames masked (goal 20%), off-screen 30% (goal 20%): it does not stay empty
    assert s['stays_empty'] is False
    assert 'stays empty on 30.0% of the 10 silent or off-screen frames (a mask on 7 of them)' in s['stays_empty_text']


def test_summary_says_yes_when_the_model_stays_empty(job):
    good = dict(TRUE, empty_fp_rate=10.0)
    conditions = dict(
        CONDITIONS,
        original=_ok(**good),
        offscreen=_ok(empty_fp_rate=15.0, empty_fp_pixel_rate=0.5, num_empty_frames=40.0),
    )
    s = _summary(job, conditions, good)
    assert s['stays_empty'] is True and 'sounds? yes' in s['stays_empty_text']
    assert s['silent_frames']['empty_percent'] == 90.0


def test_summary_printed_and_markdown(job, capsys):
    s = _summary(job)
    job.print_summary(s)
    printed = capsys.readouterr().out
    md = job.summary_markdown(s)
    for text in (printed, md):
        assert (
            'Silent / off-screen frames (empty ground truth, true audio): 10; the model puts a mask on 70.0% of '
            'them (empty_fp_rate) and stays empty on 30.0%'
        ) in text
        assert '| silence | empty | - | - | 40 | 2.5 | 1.00 |' in text
        assert '| off-screen sound | empty | - | - | 40 | 30.0 | 5.00 |' in text
        assert 'G-mIoU 75.6' in text
        assert 'Does the model stay empty when nothing on screen sounds? no' in text


def test_summary_without_silent_frames(job):
    true = dict(TRUE, empty_fp_rate=0.0, empty_fp_pixel_rate=0.0, num_empty_frames=0.0)
    conditions = dict(CONDITIONS, original=_ok(**true))
    s = _summary(job, conditions, true)
    assert s['silent_frames']['num_frames'] == 0
    assert 'none in the test split' in job.summary_markdown(s)


def test_video_demo_input_is_outside_its_output_folder(job, tmp_path):
    """The video demo refuses an --out folder that holds files: the job's input video must not be written there."""
    demo = load_tool('demo/video_demo.py', 'ccformer_video_demo')
    video, out = job.video_demo_paths(str(tmp_path))
    os.makedirs(osp.dirname(video), exist_ok=True)
    open(video, 'wb').close()
    demo.check_out_dir(out, overwrite=False)  # no SystemExit


def test_video_demo_reads_the_trained_config_when_options_changed_the_model(job, tmp_path):
    """--cfg-options reach train and test; the video demo takes the config training saved (the options in it), so a
    model they change loads its checkpoint."""
    train_dir = tmp_path / 'train'
    assert job.video_demo_config('configs/x/tiny.py', str(train_dir), ['model.a=1']) == 'configs/x/tiny.py'
    train_dir.mkdir()
    (train_dir / 'tiny.py').write_text('# as trained\n')
    assert job.video_demo_config('configs/x/tiny.py', str(train_dir), ['model.a=1']) == str(train_dir / 'tiny.py')
    assert job.video_demo_config('configs/x/tiny.py', str(train_dir), []) == 'configs/x/tiny.py'
