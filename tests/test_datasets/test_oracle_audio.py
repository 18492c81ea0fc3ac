"""projects/ccformer/datasets/oracle_audio.py and tools/dataset_converters/oracle_audio.py: the oracle-audio control
names exactly what is audible in each second, links the rest of the source, is seeded and never overwrites."""

import glob
import json
import os
import os.path as osp

import numpy as np
import pytest
from _tools import load_tool

from projects.ccformer.datasets.audio import LOG_OFFSET, load_logmel_pkl
from projects.ccformer.datasets.oracle_audio import kind_patterns, oracle_logmel, write_oracle_root


def test_patterns_do_not_depend_on_the_order_of_the_kinds():
    a = kind_patterns(['dog', 'cat', 'dog'], np.random.default_rng(3))
    b = kind_patterns(['cat', 'dog'], np.random.default_rng(3))
    assert list(a) == ['cat', 'dog'] and all(np.array_equal(a[k], b[k]) for k in a)
    assert all(p.shape == (64,) and p.max() >= 0.5 and (p > 0).sum() <= 3 * 6 for p in a.values())


def test_oracle_logmel_names_the_audible_kinds():
    patterns = kind_patterns(['cat', 'dog'], np.random.default_rng(0))
    out = oracle_logmel([['cat'], [], ['cat', 'dog'], ['dog']], patterns, np.random.default_rng(1))
    assert out.shape == (4, 1, 96, 64) and out.dtype == np.float32
    mel = np.exp(out[:, 0]).mean(1) - LOG_OFFSET  # mean magnitude per mel bin and second
    assert mel[1].max() < 0.002  # nothing audible: the noise floor only
    for t, kinds in ((0, ['cat']), (3, ['dog']), (2, ['cat', 'dog'])):
        loud = sum(patterns[k] for k in kinds) > 0
        assert mel[t][loud].min() > 0.1 and mel[t][~loud].max() < 0.002, t
    with pytest.raises(KeyError, match="'owl'"):
        oracle_logmel([['owl']], patterns, np.random.default_rng(0))


def _tool():
    return load_tool('tools/dataset_converters/oracle_audio.py', 'oracle_audio_tool')


@pytest.mark.parametrize('layout', ['ms3', 's4'])
def test_oracle_root_replaces_the_logmels_only(make_toy_root, tmp_path, layout):
    src = make_toy_root(layout, num_videos={'train': 2, 'val': 1, 'test': 1})
    dst = str(tmp_path / f'oracle_{layout}')
    assert _tool().main([src, dst, '--seed', '4']) == 4
    data = f'{layout}_data'
    for sub in ('visual_frames', 'gt_masks'):
        assert osp.realpath(osp.join(dst, data, sub)) == osp.realpath(osp.join(src, data, sub))
    for name in os.listdir(src):
        if name != data:
            assert open(osp.join(src, name), 'rb').read() == open(osp.join(dst, name), 'rb').read()
    with open(osp.join(src, 'clip_kinds.json')) as f:
        kinds = json.load(f)
    assert not osp.exists(osp.join(dst, data, 'audio_wav'))  # a config reading the real sound fails
    files = sorted(glob.glob(osp.join(dst, data, 'audio_log_mel', '**', '*.pkl'), recursive=True))
    sources = sorted(glob.glob(osp.join(src, data, 'audio_log_mel', '**', '*.pkl'), recursive=True))
    assert [osp.relpath(f, dst) for f in files] == [osp.relpath(f, src) for f in sources]
    # the patterns are drawn first, from the seed, over every kind the file names
    named = {k for v in kinds.values() for k in v['visible']}
    for v in kinds.values():
        for a in v['audible']:
            named.update(a if isinstance(a, list) else [a])
    patterns = kind_patterns(named, np.random.default_rng(4))
    for path in files:
        logmel = load_logmel_pkl(path)  # the project's safe loader reads it
        assert logmel.shape == (5, 1, 96, 64)
        audible = kinds[osp.basename(path)[:-4]]['audible']
        per_second = audible if audible and isinstance(audible[0], list) else [audible] * 5
        mel = np.exp(logmel[:, 0]).mean(1) - LOG_OFFSET  # mean magnitude per mel bin and second
        for t, heard in enumerate(per_second):
            loud = sum((patterns[k] for k in heard), np.zeros(64)) > 0
            assert (mel[t][loud] > 0.1).all() and (mel[t][~loud] < 0.002).all(), (path, t)


def test_oracle_root_in_a_new_folder(make_toy_root, tmp_path):
    dst = tmp_path / 'new' / 'folder' / 'oracle'
    assert write_oracle_root(make_toy_root('ms3'), str(dst)) == 3 and osp.isdir(dst / 'ms3_data' / 'gt_masks')


def test_oracle_root_is_seeded(make_toy_root, tmp_path):
    src = make_toy_root('ms3')
    roots = [str(tmp_path / n) for n in ('a', 'b', 'c')]
    for root, seed in zip(roots, (0, 0, 1)):
        write_oracle_root(src, root, seed=seed)

    def logmels(root):
        return [load_logmel_pkl(p) for p in sorted(glob.glob(osp.join(root, 'ms3_data', 'audio_log_mel', '*', '*')))]

    a, b, c = (logmels(r) for r in roots)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_oracle_root_never_overwrites_and_names_what_is_missing(make_toy_root, tmp_path):
    src = make_toy_root('ms3')
    dst = tmp_path / 'mine'
    dst.mkdir()
    (dst / 'keep.txt').write_text('earlier work')
    with pytest.raises(FileExistsError, match='mine exists'):
        write_oracle_root(src, str(dst))
    assert (dst / 'keep.txt').read_text() == 'earlier work'
    os.remove(osp.join(src, 'clip_kinds.json'))
    with pytest.raises(FileNotFoundError, match='clip_kinds.json'):
        write_oracle_root(src, str(tmp_path / 'new'))
    assert not osp.exists(tmp_path / 'new')


def test_an_interrupted_write_leaves_nothing_under_the_name(make_toy_root, tmp_path, monkeypatch):
    import projects.ccformer.datasets.oracle_audio as oracle

    src = make_toy_root('ms3', {'train': 2, 'val': 1, 'test': 1})
    real, calls = oracle.oracle_logmel, []

    def fails_on_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(oracle, 'oracle_logmel', fails_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        write_oracle_root(src, str(tmp_path / 'out'))
    assert not any(n == 'out' or n.startswith('.out.') for n in os.listdir(tmp_path))  # nor its temporary folder


def test_a_folder_made_meanwhile_is_left_alone(make_toy_root, tmp_path, monkeypatch):
    """The user (or another run) creates DST while the copy is written: theirs stays, the copy is removed."""
    import projects.ccformer.datasets.oracle_audio as oracle

    src = make_toy_root('ms3')
    dst = tmp_path / 'out'
    real = oracle.oracle_logmel

    def meanwhile(*args):
        dst.mkdir(exist_ok=True)
        return real(*args)

    monkeypatch.setattr(oracle, 'oracle_logmel', meanwhile)
    with pytest.raises(FileExistsError, match='appeared while'):
        write_oracle_root(src, str(dst))
    assert os.listdir(dst) == [] and not any(n.startswith('.out.') for n in os.listdir(tmp_path))


def test_bad_sources_are_named(make_toy_root, tmp_path):
    src = make_toy_root('ms3')
    with pytest.raises(ValueError, match='inside the source'):
        write_oracle_root(src, osp.join(src, 'oracle'))
    kinds_path = osp.join(src, 'clip_kinds.json')
    good = open(kinds_path).read()
    for bad, match in (('{"a": ', 'not valid JSON'), ('{"v": {"visible": [], "audible": ["dog", ["cat"]]}}', "'v'")):
        with open(kinds_path, 'w') as f:
            f.write(bad)
        with pytest.raises(ValueError, match=match):
            write_oracle_root(src, str(tmp_path / 'x'))
    with open(kinds_path, 'w') as f:
        f.write(good)
    os.rename(osp.join(src, 'ms3_data', 'audio_log_mel'), osp.join(src, 'ms3_data', 'elsewhere'))
    with pytest.raises(FileNotFoundError, match='no log-mel'):
        write_oracle_root(src, str(tmp_path / 'x'))
    os.makedirs(osp.join(src, 's4_data'))
    with pytest.raises(FileNotFoundError, match='one of s4_data/ or ms3_data/'):
        write_oracle_root(src, str(tmp_path / 'x'))
    assert not any(n == 'x' or n.startswith('.x.') for n in os.listdir(tmp_path))
