"""Toy AVSBench generator: layouts, determinism, and that the target needs the audio."""

import csv
import hashlib
import json
import os
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
from _tools import load_tool

from projects.ccformer.datasets import toy
from projects.ccformer.datasets.audio import SAMPLE_RATE, load_logmel_pkl, load_wav, waveform_to_logmel
from projects.ccformer.datasets.palette import voc_palette


def _tree_digest(root):
    """Digest of names and contents; .pkl files by their decoded tensor (their pickle bytes hold a
    memory-address storage key, as the official files do)."""
    digest = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            p = osp.join(dirpath, f)
            digest.update(osp.relpath(p, root).encode())
            if f.endswith('.pkl'):
                digest.update(load_logmel_pkl(p).tobytes())
                continue
            with open(p, 'rb') as fh:
                digest.update(fh.read())
    return digest.hexdigest()


def test_deterministic_from_seed(tmp_path):
    kw = dict(num_videos={'train': 2, 'val': 1, 'test': 1}, img_size=32)
    toy.generate_toy_avsbench(str(tmp_path / 'a'), 'ms3', seed=3, **kw)
    toy.generate_toy_avsbench(str(tmp_path / 'b'), 'ms3', seed=3, **kw)
    toy.generate_toy_avsbench(str(tmp_path / 'c'), 'ms3', seed=4, **kw)
    assert _tree_digest(tmp_path / 'a') == _tree_digest(tmp_path / 'b')
    assert _tree_digest(tmp_path / 'a') != _tree_digest(tmp_path / 'c')


def test_s4_layout(toy_s4_root):
    with open(osp.join(toy_s4_root, 's4_meta_data.csv')) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['name', 'start_time', 'category', 'split']
    assert [r[3] for r in rows[1:]] == ['train'] * 3 + ['val'] * 2 + ['test'] * 2
    for name, _, cat, split in rows[1:]:
        base = osp.join(toy_s4_root, 's4_data')
        frames = sorted(os.listdir(osp.join(base, 'visual_frames', split, cat, name)))
        assert frames == [f'{name}_{k}.png' for k in range(1, 6)]
        masks = sorted(os.listdir(osp.join(base, 'gt_masks', split, cat, name)))
        assert len(masks) == (1 if split == 'train' else 5)
        m = cv2.imread(osp.join(base, 'gt_masks', split, cat, name, masks[0]), cv2.IMREAD_UNCHANGED)
        assert m.ndim == 2 and set(np.unique(m)) <= {0, 255}
        assert cv2.imread(osp.join(base, 'visual_frames', split, cat, name, frames[0])).shape == (64, 64, 3)
        wav, rate = load_wav(osp.join(base, 'audio_wav', split, cat, f'{name}.wav'))
        assert rate == SAMPLE_RATE and wav.shape == (5 * SAMPLE_RATE,)
        pkl = osp.join(base, 'audio_log_mel', split, cat, f'{name}.pkl')
        with open(pkl, 'rb') as f:
            raw = pickle.load(f)  # our own toy file: check it is written like the official ones
        assert raw.requires_grad and tuple(raw.shape) == (5, 1, 96, 64)
        np.testing.assert_allclose(load_logmel_pkl(pkl)[:, 0], waveform_to_logmel(wav, rate))


def test_ms3_layout(toy_ms3_root):
    with open(osp.join(toy_ms3_root, 'ms3_meta_data.csv')) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['video_id', 'split']
    name, split = rows[1]
    base = osp.join(toy_ms3_root, 'ms3_data')
    assert sorted(os.listdir(osp.join(base, 'visual_frames', name))) == [f'{name}.mp4_{k}.png' for k in range(1, 6)]
    assert len(os.listdir(osp.join(base, 'gt_masks', split, name))) == 5
    assert osp.isfile(osp.join(base, 'audio_wav', split, f'{name}.wav'))
    assert osp.isfile(osp.join(base, 'audio_log_mel', split, f'{name}.pkl'))


def test_avss_layout(toy_avss_root):
    with open(osp.join(toy_avss_root, 'metadata.csv')) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['vid', 'uid', 's_min', 's_sec', 'a_obj', 'split', 'label']
    assert {r['label'] for r in rows} == {'v1s', 'v1m', 'v2'}
    label2idx = json.load(open(osp.join(toy_avss_root, 'label2idx.json')))
    assert len(label2idx) == 71 and label2idx['background'] == 1
    assert sorted(label2idx.values()) == list(range(1, 72))
    pal = np.array(voc_palette(71))
    for r in rows:
        vdir = osp.join(toy_avss_root, r['label'], r['uid'])
        n = 10 if r['label'] == 'v2' else 5
        assert sorted(os.listdir(osp.join(vdir, 'frames'))) == sorted(f'{i}.jpg' for i in range(n))
        m = 1 if (r['label'] == 'v1s' and r['split'] == 'train') else n
        assert len(os.listdir(osp.join(vdir, 'labels_rgb'))) == m
        rgb = cv2.imread(osp.join(vdir, 'labels_rgb', '0.png'))[..., ::-1]
        sem = cv2.imread(osp.join(vdir, 'labels_semantic', '0.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(rgb, pal[sem])
        assert cv2.imread(osp.join(vdir, 'frames', '0.jpg')).shape == (60, 80, 3)
        wav, rate = load_wav(osp.join(vdir, 'audio.wav'))
        assert wav.shape == (n * rate,)


def _kind_pixels(img, kind):
    return np.all(np.abs(img.astype(int) - kind.color_bgr) <= 2, axis=-1)


def test_target_needs_audio(tmp_path):
    """Several kinds are visible in each frame; the mask covers the sounding ones only."""
    root = str(tmp_path / 'ms3')
    toy.generate_toy_avsbench(root, 'ms3', {'train': 6}, seed=1, img_size=96)
    rows = list(csv.DictReader(open(osp.join(root, 'ms3_meta_data.csv'))))
    unlabeled_visible = 0
    for r in rows:
        name = r['video_id']
        for k in range(1, 6):
            img = cv2.imread(osp.join(root, 'ms3_data', 'visual_frames', name, f'{name}.mp4_{k}.png'))
            mask = (
                cv2.imread(
                    osp.join(root, 'ms3_data', 'gt_masks', 'train', name, f'{name}_{k}.png'), cv2.IMREAD_UNCHANGED
                )
                > 0
            )
            visible = [kd for kd in toy.OBJECT_KINDS if _kind_pixels(img, kd).sum() > 20]
            assert len(visible) >= 2
            for kd in visible:
                px = _kind_pixels(img, kd)
                inside = (px & mask).sum() / px.sum()
                assert inside > 0.95 or inside < 0.05  # an object is either target or not
                unlabeled_visible += inside < 0.05
    assert unlabeled_visible > 0


def test_each_kind_has_its_own_sound():
    t = np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
    peaks = []
    for kind in toy.OBJECT_KINDS:
        logmel = waveform_to_logmel(0.4 * toy._kind_sound(kind, t), SAMPLE_RATE)
        peaks.append(int(logmel.mean((0, 1)).argmax()))
    assert len(set(peaks)) == len(toy.OBJECT_KINDS)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='layout'):
        toy.generate_toy_avsbench(str(tmp_path), 'ms4')
    with pytest.raises(ValueError, match='splits'):
        toy.generate_toy_avsbench(str(tmp_path), 's4', {'training': 1})
    with pytest.raises(ValueError, match='subset'):
        toy.generate_toy_avsbench(str(tmp_path), 'avss', {'train': 1}, subsets=['v3'])


def test_cli(tmp_path):
    cli = load_tool('tools/dataset_converters/generate_toy_avsbench.py')
    out = str(tmp_path / 'AVSS')
    cli.main(
        [
            out,
            '--layout',
            'avss',
            '--num-videos',
            '1',
            '1',
            '0',
            '--img-size',
            '40',
            '30',
            '--subsets',
            'v2',
            '--seed',
            '2',
        ]
    )
    rows = list(csv.DictReader(open(osp.join(out, 'metadata.csv'))))
    assert [(r['split'], r['label']) for r in rows] == [('train', 'v2'), ('val', 'v2')]
    img = cv2.imread(osp.join(out, 'v2', rows[0]['uid'], 'frames', '9.jpg'))
    assert img.shape == (30, 40, 3)
