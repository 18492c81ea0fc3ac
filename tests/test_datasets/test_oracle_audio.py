"""projects/ccformer/datasets/oracle_audio.py and tools/dataset_converters/oracle_audio.py: the oracle-audio control
names exactly what is audible in each second, links the rest of the source, is seeded and never overwrites."""

import glob
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest

from projects.ccformer.datasets.audio import LOG_OFFSET, load_logmel_pkl
from projects.ccformer.datasets.oracle_audio import kind_patterns, oracle_logmel, write_oracle_root

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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
    path = osp.join(ROOT, 'tools', 'dataset_converters', 'oracle_audio.py')
    spec = importlib.util.spec_from_file_location('oracle_audio_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('layout', ['ms3', 's4'])
def test_oracle_root_replaces_the_logmels_only(make_toy_root, tmp_path, layout):
    src = make_toy_root(layout, num_videos={'train': 2, 'val': 1, 'test': 1})
    dst = str(tmp_path / f'oracle_{layout}')
    assert _tool().main([src, dst, '--seed', '4']) == 4
    data = f'{layout}_data'
    for sub in ('visual_frames', 'gt_masks', 'audio_wav'):
        assert osp.realpath(osp.join(dst, data, sub)) == osp.realpath(osp.join(src, data, sub))
    for name in os.listdir(src):
        if name != data:
            assert open(osp.join(src, name), 'rb').read() == open(osp.join(dst, name), 'rb').read()
    with open(osp.join(src, 'clip_kinds.json')) as f:
        kinds = json.load(f)
    files = sorted(glob.glob(osp.join(dst, data, 'audio_log_mel', '**', '*.pkl'), recursive=True))
    sources = sorted(glob.glob(osp.join(src, data, 'audio_log_mel', '**', '*.pkl'), recursive=True))
    assert [osp.relpath(f, dst) for f in files] == [osp.relpath(f, src) for f in sources]
    for path in files:
        logmel = load_logmel_pkl(path)  # the project's safe loader reads it
        assert logmel.shape == (5, 1, 96, 64)
        audible = kinds[osp.basename(path)[:-4]]['audible']
        per_second = audible if audible and isinstance(audible[0], list) else [audible] * 5
        quiet = np.exp(logmel[:, 0]).max((1, 2)) - LOG_OFFSET < 0.002
        assert quiet.tolist() == [not a for a in per_second]


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


def test_an_interrupted_write_leaves_nothing_under_the_name(make_toy_root, tmp_path):
    src = make_toy_root('ms3')
    with open(osp.join(src, 'clip_kinds.json')) as f:
        kinds = json.load(f)
    kinds.pop(sorted(kinds)[0])  # a clip whose kinds are unknown: the write fails part-way
    with open(osp.join(src, 'clip_kinds.json'), 'w') as f:
        json.dump(kinds, f)
    with pytest.raises(KeyError, match='is not in'):
        write_oracle_root(src, str(tmp_path / 'out'))
    assert not any(n == 'out' or n.startswith('.out.') for n in os.listdir(tmp_path))  # nor its temporary folder
