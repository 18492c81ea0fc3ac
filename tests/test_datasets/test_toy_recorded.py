"""The ``recorded`` toy family: shipped assets, held-out takes, occlusion-aware labels, rooms, determinism, CLI."""

import csv
import json
import os.path as osp

import numpy as np
import pytest
from _tools import load_tool
from test_toy import _tree_digest

from projects.ccformer.datasets import toy
from projects.ccformer.datasets.audio import SAMPLE_RATE, load_wav
from projects.ccformer.datasets.sound_bank import SoundBank
from projects.ccformer.datasets.toy_recorded import ASSETS_ROOT, HELDOUT_BANK, TRAIN_BANK, RecordedFamily, split_takes


@pytest.fixture(scope='module')
def family():
    return RecordedFamily()


def test_shipped_assets_have_credits(family):
    """Every shipped file is listed in the manifest with its package, and each package has its copyright file."""
    with open(osp.join(ASSETS_ROOT, 'manifest.json')) as f:
        manifest = json.load(f)
    entries = [e for group in ('sounds', 'pictures', 'backgrounds') for e in manifest[group]]
    listed = {e['file'] for e in entries}
    for kind in family.kinds:
        for i in family.takes[kind]['all']:
            assert 'sounds/' + family.bank.files[i] in listed
    for e in entries:
        assert osp.isfile(osp.join(ASSETS_ROOT, e['file'])), e['file']
        package = e['package'].split('_')[0]
        assert osp.isfile(osp.join(ASSETS_ROOT, 'licenses', f'{package}.copyright')), package


def test_banks_are_disjoint_from_the_animals(family):
    train, heldout = SoundBank(TRAIN_BANK), SoundBank(HELDOUT_BANK)
    assert len(train.kinds) >= 4 and len(heldout.kinds) >= 4
    assert not set(train.kinds) & set(heldout.kinds)
    assert not (set(train.kinds) | set(heldout.kinds)) & set(family.kinds)


def test_split_takes():
    train, held = split_takes(['e', 'a', 'd', 'c', 'b', 'f', 'g'])
    assert held == ['c', 'f'] and train == ['a', 'b', 'd', 'e', 'g']


def _heard_takes(family, monkeypatch, split, n=6, **kw):
    heard = []
    window = family.bank.window

    def spy(rng, index, length):
        heard.append(index)
        return window(rng, index, length)

    monkeypatch.setattr(family.bank, 'window', spy)
    rng = np.random.default_rng(0)
    for _ in range(n):
        family.make_clip(rng, 5, 32, 32, multi=True, allow_empty=True, split=split, **kw)
    monkeypatch.undo()
    return set(heard)


def test_heldout_takes_never_in_train_or_val(family, monkeypatch):
    train_takes = {i for k in family.kinds for i in family.takes[k]['train']}
    held_takes = {i for k in family.kinds for i in family.takes[k]['heldout']}
    assert train_takes and held_takes and not train_takes & held_takes
    for split in ('train', 'val'):
        assert _heard_takes(family, monkeypatch, split) <= train_takes
    assert _heard_takes(family, monkeypatch, 'test') <= held_takes
    on_train = RecordedFamily(test_takes='train')
    assert _heard_takes(on_train, monkeypatch, 'test') <= train_takes


def test_labels_follow_occlusion(family):
    """The later object hides the earlier one; the label of a sounding object covers its visible pixels only."""
    h = w = 40
    solid = np.ones((20, 20), bool)
    objects = [
        dict(kind=family.kinds[0], color=np.full((20, 20, 3), 10, np.uint8), alpha=solid, x=5, y=5, dx=0, dy=0),
        dict(kind=family.kinds[1], color=np.full((20, 20, 3), 200, np.uint8), alpha=solid, x=15, y=15, dx=0, dy=0),
    ]
    img, label = family._render(np.zeros((h, w, 3), np.uint8), objects, 0, [family.kinds[0]])
    assert (label == 1).sum() == 20 * 20 - 10 * 10  # the overlap belongs to the front object, which is silent
    assert label[20, 20] == 0 and img[20, 20, 0] == 200 and label[6, 6] == 1
    _, both = family._render(np.zeros((h, w, 3), np.uint8), objects, 0, list(family.kinds[:2]))
    assert (both == 2).sum() == 400 and (both == 1).sum() == 300


def test_clips_are_varied_and_rooms_never_silent(family):
    rng = np.random.default_rng(3)
    clips = [family.make_clip(rng, 5, 48, 48, multi=True, allow_empty=True, split='train') for _ in range(12)]
    quiet = 0
    for clip in clips:
        assert len(clip.frames) == 5 and clip.frames[0].shape == (48, 48, 3) and clip.labels[0].shape == (48, 48)
        assert 2 <= len(clip.visible_kinds) <= 3
        assert clip.audio.shape == (5 * SAMPLE_RATE,) and np.abs(clip.audio).max() <= 1
        for s, now in enumerate(clip.audible_kinds):
            second = clip.audio[s * SAMPLE_RATE : (s + 1) * SAMPLE_RATE]
            rms = np.sqrt(np.mean(second**2))
            assert rms > 10 ** (-62 / 20), 'a quiet second is room tone, not digital zero'
            if not now:
                quiet += 1
                assert rms < 10 ** (-35 / 20)
            on_screen = [k for k in now if k in clip.visible_kinds]
            labelled = {family.kinds[int(c) - 1] for c in np.unique(clip.labels[s]) if c}
            assert labelled <= set(on_screen)
    assert quiet > 0
    # different clips look different: the background differs beyond noise
    assert np.abs(clips[0].frames[0].astype(int) - clips[1].frames[0].astype(int)).mean() > 10


def test_generate_deterministic_and_layout(tmp_path):
    kw = dict(num_videos={'train': 2, 'val': 1, 'test': 1}, img_size=32, family='recorded')
    toy.generate_toy_avsbench(str(tmp_path / 'a'), 'ms3', seed=3, **kw)
    toy.generate_toy_avsbench(str(tmp_path / 'b'), 'ms3', seed=3, **kw)
    toy.generate_toy_avsbench(str(tmp_path / 'c'), 'ms3', seed=4, **kw)
    assert _tree_digest(tmp_path / 'a') == _tree_digest(tmp_path / 'b')
    assert _tree_digest(tmp_path / 'a') != _tree_digest(tmp_path / 'c')
    rows = list(csv.DictReader(open(tmp_path / 'a' / 'ms3_meta_data.csv')))
    assert [r['split'] for r in rows] == ['train', 'train', 'val', 'test']
    wav, rate = load_wav(str(tmp_path / 'a' / 'ms3_data' / 'audio_wav' / 'train' / f"{rows[0]['video_id']}.wav"))
    assert rate == SAMPLE_RATE and wav.shape == (5 * SAMPLE_RATE,)


def test_bad_family_options(tmp_path):
    with pytest.raises(ValueError, match='test_takes'):
        RecordedFamily(test_takes='some')
    with pytest.raises(FileNotFoundError, match='sounds'):
        RecordedFamily(assets_root=str(tmp_path))
    with pytest.raises(ValueError, match='kinds'):
        RecordedFamily(kinds=['cow', 'unicorn'])
    with pytest.raises(ValueError, match='family'):
        toy.generate_toy_avsbench(str(tmp_path / 'x'), 's4', {'train': 1}, family='cartoon')
    with pytest.raises(ValueError, match='no options'):
        toy.build_family(dict(type='synthetic', test_takes='train'))


def test_cli_family_options(tmp_path, capsys):
    cli = load_tool('tools/dataset_converters/generate_toy_avsbench.py')
    out = str(tmp_path / 'S4')
    cli.main([out, '--layout', 's4', '--num-videos', '1', '0', '1', '--img-size', '32', '--family', 'recorded'])
    assert '(recorded)' in capsys.readouterr().out
    rows = list(csv.DictReader(open(osp.join(out, 's4_meta_data.csv'))))
    assert rows[0]['category'] in RecordedFamily().kinds
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / 'T'), '--test-takes', 'train'])
    assert 'apply to --family recorded only' in capsys.readouterr().err
