"""``tools/analysis_tools/robustness_summary.py`` (mean, std, min, max of robustness reports over seeds) on hand-made
reports, and ``robustness_study.py`` (generate, train, test, summarise; resumable) with stand-in commands."""

import json
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))

import robustness_study  # noqa: E402
import robustness_summary  # noqa: E402

from projects.ccformer.evaluation.robustness import robustness_report  # noqa: E402


def ok(gt='kept', **metrics):
    return dict(status='ok', ground_truth=gt, metrics=metrics)


def make_report(miou, shuffled, silence_fp, recorded_fp=None, data_root='data/b', seed=0, trained='data/a'):
    conditions = dict(
        original=ok(mIoU=miou, Fscore=miou + 10, empty_fp_rate=10.0, empty_fp_pixel_rate=1.0, num_empty_frames=4),
        shuffled=ok(
            mIoU=shuffled, Fscore=shuffled + 10, empty_fp_rate=30.0, empty_fp_pixel_rate=3.0, num_empty_frames=4
        ),
        silence=ok(
            'empty', mIoU=99.0, Fscore=0.0, empty_fp_rate=silence_fp, empty_fp_pixel_rate=2.0, num_empty_frames=10
        ),
        offscreen=dict(status='n/a', reason='kinds unknown'),
    )
    if recorded_fp is not None:
        conditions['offscreen_recorded'] = ok(
            'empty', mIoU=95.0, Fscore=0.0, empty_fp_rate=recorded_fp, empty_fp_pixel_rate=4.0, num_empty_frames=10
        )
    return robustness_report(
        conditions,
        config='configs/x/tiny_ms3.py',
        checkpoint='c.pth',
        data_root=data_root,
        audio_seed=seed,
        tested_on=dict(data_root=data_root),
        trained_on=dict(known=True, data_root=trained),
    )


def write(path, report) -> str:
    with open(path, 'w') as f:
        json.dump(report, f)
    return str(path)


def test_summary_numbers_by_hand(tmp_path, capsys):
    paths = [
        write(tmp_path / f'seed{s}.json', make_report(m, u, fp, rec, seed=s))
        for s, (m, u, fp, rec) in enumerate(
            [(60.0, 40.0, 0.0, 10.0), (70.0, 45.0, 10.0, 30.0), (80.0, 65.0, 20.0, 50.0)]
        )
    ]
    summary = robustness_summary.main(paths + ['--out', str(tmp_path / 's.json'), '--markdown', str(tmp_path / 's.md')])
    (label,) = summary
    assert label == 'tiny_ms3: trained on data/a, tested on data/b'
    group = summary[label]
    assert group['runs'] == paths and group['seeds'] == [0, 1, 2]
    f = group['figures']
    assert f['original/mIoU'] == dict(mean=70.0, std=pytest.approx(10.0), min=60.0, max=80.0, n=3)
    assert f['gap/mIoU']['mean'] == pytest.approx(20.0)  # gaps 20, 25, 15
    assert f['gap/mIoU']['std'] == pytest.approx(5.0) and (f['gap/mIoU']['min'], f['gap/mIoU']['max']) == (15, 25)
    assert f['silence/frames_masked'] == dict(mean=10.0, std=pytest.approx(10.0), min=0.0, max=20.0, n=3)
    assert f['offscreen_recorded/frames_masked']['mean'] == pytest.approx(30.0)
    assert f['original/frames_masked']['mean'] == 10.0  # the true audio's quiet frames
    assert 'silence/mIoU' not in f and 'silence/Fscore' not in f  # empty ground truth: not figures
    assert not any(k.startswith('offscreen/') for k in f)  # not measured
    # combined FPR of each run is the mean of silence (2.0) and recorded (4.0) pixel FPR
    assert f['combined/FPR'] == dict(mean=3.0, std=0.0, min=3.0, max=3.0, n=3)
    assert f['combined/G_mIoU']['n'] == 3 and f['combined/G_mIoU']['mean'] == pytest.approx(
        sum(2 * m * 97 / (m + 97) for m in (60, 70, 80)) / 3
    )
    keys = list(f)
    assert keys.index('original/mIoU') < keys.index('shuffled/mIoU') < keys.index('silence/frames_masked')
    assert keys.index('offscreen_recorded/pixel_FPR') < keys.index('gap/mIoU') < keys.index('combined/FPR')
    printed = capsys.readouterr().out
    assert '| original/mIoU | 70.0 | 10.0 | 60.0 | 80.0 | 3 |' in printed
    assert '| gap/mIoU | 20.0 | 5.0 | 15.0 | 25.0 | 3 |' in printed
    with open(tmp_path / 's.json') as fh:
        assert json.load(fh) == json.loads(json.dumps(summary))
    with open(tmp_path / 's.md') as fh:
        assert fh.read().strip() == printed.strip()


def test_labels_group_and_one_run_has_no_spread(tmp_path, capsys):
    a = write(tmp_path / 'a.json', make_report(60.0, 40.0, 0.0))
    b = write(tmp_path / 'b.json', make_report(70.0, 40.0, 0.0, data_root='data/c'))
    c = write(tmp_path / 'c.json', make_report(80.0, 40.0, 0.0, data_root='data/c'))
    summary = robustness_summary.main([f'robust={a}', f'robust={b}', c])
    assert list(summary) == ['robust', 'tiny_ms3: trained on data/a, tested on data/c']
    assert summary['robust']['figures']['original/mIoU']['mean'] == 65.0
    lone = summary['tiny_ms3: trained on data/a, tested on data/c']['figures']['original/mIoU']
    assert lone == dict(mean=80.0, std=None, min=80.0, max=80.0, n=1)
    assert 'fewer than 3: the spread is not meaningful' in capsys.readouterr().out


def test_bad_reports_are_named(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"not": "a report"}')
    with pytest.raises(ValueError, match='bad.json: not a robustness report'):
        robustness_summary.main([str(bad)])
    bad.write_text('{')
    with pytest.raises(ValueError, match='bad.json: not valid JSON'):
        robustness_summary.main([str(bad)])
    with pytest.raises(FileNotFoundError, match='missing.json'):
        robustness_summary.main([str(tmp_path / 'missing.json')])


# ------------------------------------------------------------------------------------------------ the study driver
FAKE_GENERATE = [
    'python',
    '-c',
    'import os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + "/gen", "w")',
    '{data_root}',
]
# "training" writes last_checkpoint naming a file; a second call for the same seed would append to calls.txt
FAKE_TRAIN = [
    'python',
    '-c',
    'import os, sys; w = sys.argv[1]; os.makedirs(w, exist_ok=True); '
    'open(os.path.join(w, "last_checkpoint"), "w").write(w + "/epoch_2.pth"); '
    'open(sys.argv[2], "a").write(" ".join(sys.argv[3:]) + "\\n")',
    '{train_work_dir}',
    '{work_dir}/calls.txt',
    'train',
    '{seed}',
    '{data_root}',
]


def _fake_test(tmp_path):
    """A stand-in for robustness.py writing a report whose true-audio mIoU is 60 + 10 * seed."""
    script = tmp_path / 'fake_test.py'
    script.write_text(
        'import json, sys\n'
        'out, seed, root, ckpt, calls = sys.argv[1:6]\n'
        'm = dict(mIoU=60.0 + 10 * int(seed), Fscore=50.0, empty_fp_rate=0.0, num_empty_frames=0)\n'
        'report = dict(config="configs/x/tiny_ms3.py", audio_seed=int(seed), tested_on=dict(data_root=root),\n'
        '              conditions=dict(original=dict(status="ok", ground_truth="kept", metrics=m)))\n'
        'json.dump(report, open(out, "w"))\n'
        'open(calls, "a").write(f"test {seed} {root} {ckpt}\\n")\n'
    )
    return ['python', str(script), '{out}', '{audio_seed}', '{data_root}', '{checkpoint}', '{work_dir}/calls.txt']


def _study(tmp_path, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    study = dict(
        work_dir=str(tmp_path / 'study'),
        config='configs/x/tiny_ms3.py',
        seeds=[0, 1, 2],
        epochs=2,
        train_on='toy',
        test_on=['toy', 'other'],
        families=dict(
            toy=dict(data_root='{work_dir}/data/toy{seed}', generate=FAKE_GENERATE),
            other=dict(data_root='{work_dir}/data/other', generate=FAKE_GENERATE),
        ),
        train_command=FAKE_TRAIN,
        test_command=_fake_test(tmp_path),
    )
    study.update(kw)
    path = tmp_path / 'study.json'
    path.write_text(json.dumps(study))
    return str(path), study


def test_study_runs_every_seed_then_resumes_without_redoing(tmp_path, capsys):
    path, study = _study(tmp_path)
    summary = robustness_study.main([path])
    work = study['work_dir']
    with open(osp.join(work, 'calls.txt')) as f:
        calls = f.read().splitlines()
    assert [c for c in calls if c.startswith('train')] == [f'train {s} {work}/data/toy{s}' for s in range(3)]
    tests = [c for c in calls if c.startswith('test')]
    assert tests[:2] == [
        f'test 0 {work}/data/toy0 {work}/train/seed0/epoch_2.pth',
        f'test 0 {work}/data/other {work}/train/seed0/epoch_2.pth',
    ]
    assert len(tests) == 6
    assert sorted(osp.basename(p) for p in (tmp_path / 'study' / 'data').iterdir()) == ['other', 'toy0', 'toy1', 'toy2']
    assert list(summary) == ['toy -> toy', 'toy -> other']
    assert summary['toy -> other']['figures']['original/mIoU'] == dict(mean=70.0, std=10.0, min=60.0, max=80.0, n=3)
    assert summary['toy -> other']['runs'][0] == f'{work}/reports/toy_on_other/seed0.json'
    assert osp.isfile(osp.join(work, 'summary.md')) and osp.isfile(osp.join(work, 'summary.json'))
    assert capsys.readouterr().out.rstrip().endswith('| original/Fscore | 50.0 | 0.0 | 50.0 | 50.0 | 3 |')
    # again, with one more seed: only the new seed's steps run (the fake generator would fail on an existing folder)
    path, study = _study(tmp_path, seeds=[0, 1, 2, 3])
    summary = robustness_study.main([path])
    with open(osp.join(work, 'calls.txt')) as f:
        new = f.read().splitlines()[len(calls) :]
    assert new == [
        f'train 3 {work}/data/toy3',
        f'test 3 {work}/data/toy3 {work}/train/seed3/epoch_2.pth',
        f'test 3 {work}/data/other {work}/train/seed3/epoch_2.pth',
    ]
    assert summary['toy -> toy']['figures']['original/mIoU']['n'] == 4


FAKE_CALIBRATE = [
    'python',
    '-c',
    'import sys; open(sys.argv[1], "w").write("c"); open(sys.argv[2], "a").write("calibrate " + sys.argv[3] + "\\n")',
    '{out}',
    '{work_dir}/calls.txt',
    '{checkpoint}',
]


def test_study_calibrates_and_tests_both_checkpoints(tmp_path, capsys):
    path, study = _study(tmp_path, seeds=[0, 1], test_on=['other'], calibrate=dict(command=FAKE_CALIBRATE))
    summary = robustness_study.main([path])
    work = study['work_dir']
    with open(osp.join(work, 'calls.txt')) as f:
        calls = [c for c in f.read().splitlines() if not c.startswith('train')]
    assert calls[:3] == [
        f'calibrate {work}/train/seed0/epoch_2.pth',
        f'test 0 {work}/data/other {work}/train/seed0/epoch_2.pth',
        f'test 0 {work}/data/other {work}/train/seed0/calibrated.pth',
    ]
    assert list(summary) == ['toy -> other', 'toy -> other (calibrated)']
    assert summary['toy -> other (calibrated)']['runs'][1] == f'{work}/reports/toy_on_other_calibrated/seed1.json'
    # the default command calibrates on the training family's data root with the calibration's own recordings
    path, study = _study(tmp_path / 'd', seeds=[4], test_on=['other'], calibrate=dict(offscreen_audio='train_bank'))
    assert robustness_study.main([path, '--dry-run']) is None
    work = study['work_dir']
    assert (
        f'tools/analysis_tools/calibrate_presence.py configs/x/tiny_ms3.py {work}/train/seed4/epoch_2.pth --out '
        f'{work}/train/seed4/calibrated.pth --data-root {work}/data/toy4 --audio-seed 4 --force '
        '--offscreen-audio train_bank' in capsys.readouterr().out
    )
    for bad in (dict(offscreen_audio=3), dict(args='--x'), dict(command='python x'), dict(command=[])):
        path, _ = _study(tmp_path / 'e', calibrate=bad)
        with pytest.raises(SystemExit, match='"calibrate" must be an object'):
            robustness_study.main([path])
    path, _ = _study(tmp_path / 'g', calibrate=dict(offscreen_audio=str(tmp_path / 'no_such_bank')))
    with pytest.raises(SystemExit, match='calibrate.offscreen_audio .* is not a folder'):
        robustness_study.main([path])


def test_study_resumes_a_stopped_training_and_reports_failures(tmp_path):
    path, study = _study(tmp_path, seeds=[0], test_on=['toy'])
    work = study['work_dir']
    # a training run that stopped part-way: last_checkpoint exists but the step is not done
    seed_dir = osp.join(work, 'train', 'seed0')
    os.makedirs(seed_dir)
    open(osp.join(seed_dir, 'last_checkpoint'), 'w').write('x')
    robustness_study.main([path])
    with open(osp.join(work, 'calls.txt')) as f:
        assert f.readline().split()[-1] == '--resume'
    failing, _ = _study(
        tmp_path / 'f', seeds=[0], test_on=['toy'], train_command=['python', '-c', 'raise SystemExit(3)']
    )
    with pytest.raises(SystemExit, match=r'train seed0 failed \(exit 3\)'):
        robustness_study.main([failing])


def test_study_file_errors_and_dry_run(tmp_path, capsys):
    path, study = _study(tmp_path, test_on=['toy', 'nowhere'])
    with pytest.raises(SystemExit, match="family 'nowhere' is used but not defined"):
        robustness_study.main([path])
    path, study = _study(tmp_path, seeds=[])
    with pytest.raises(SystemExit, match='"seeds" must be a non-empty list'):
        robustness_study.main([path])
    bad = tmp_path / 'bad.json'
    bad.write_text('{"work_dir": "w"}')
    with pytest.raises(SystemExit, match='missing key'):
        robustness_study.main([str(bad)])
    # the default commands: tools/train.py and robustness.py with the seed, epochs and data roots
    path, study = _study(tmp_path, seeds=[4], test_on=['toy'], offscreen_audio='rec')
    del study['train_command'], study['test_command']
    with open(path, 'w') as f:
        json.dump(study, f)
    assert robustness_study.main([path, '--dry-run']) is None
    out = capsys.readouterr().out
    work = study['work_dir']
    assert (
        f'tools/train.py configs/x/tiny_ms3.py --work-dir {work}/train/seed4 --data-root {work}/data/toy4 '
        '--cfg-options randomness.seed=4 train_cfg.max_epochs=2' in out
    )
    assert (
        f'tools/analysis_tools/robustness.py configs/x/tiny_ms3.py {work}/train/seed4/epoch_2.pth --data-root '
        f'{work}/data/toy4 --audio-seed 4' in out
    )
    assert f'--out {work}/reports/toy_on_toy/seed4.json --offscreen-audio rec' in out
    assert not osp.exists(osp.join(work, 'data'))  # nothing ran
    # a run whose training saved no config (a train_command writing elsewhere) cannot test the model it trained
    nosave, nosave_study = _study(tmp_path / 'nosave', seeds=[0], test_on=['toy'])
    del nosave_study['test_command']
    with open(nosave, 'w') as f:
        json.dump(nosave_study, f)
    with pytest.raises(SystemExit, match='saved no config at .*train/seed0/tiny_ms3.py'):
        robustness_study.main([nosave])
    capsys.readouterr()
    # once training has saved its config (train_args' --cfg-options merged in), the test builds the model from it
    os.makedirs(osp.join(work, 'train', 'seed4'))
    open(osp.join(work, 'train', 'seed4', 'tiny_ms3.py'), 'w').write('# as trained\n')
    assert robustness_study.main([path, '--dry-run']) is None
    assert (
        f'tools/analysis_tools/robustness.py {work}/train/seed4/tiny_ms3.py {work}/train/seed4/epoch_2.pth'
        in capsys.readouterr().out
    )


def test_summary_tool_as_a_command(tmp_path):
    a = write(tmp_path / 'a.json', make_report(60.0, 40.0, 0.0))
    proc = subprocess.run(
        [sys.executable, 'tools/analysis_tools/robustness_summary.py', a],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == '### tiny_ms3: trained on data/a, tested on data/b'
