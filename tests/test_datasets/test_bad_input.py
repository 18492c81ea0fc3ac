"""Every bad-input case of docs/bad_inputs.md either loads correctly or stops with an error naming the file."""

import json
import os
import os.path as osp
import pickle
from functools import partial

import numpy as np
import pytest
import soundfile as sf
import torch

import projects.ccformer  # noqa: F401
from projects.ccformer.datasets import AVSBenchMS3Dataset, AVSBenchS4Dataset, AVSSDataset

# serialize_data=False skips mmengine's gc.collect() per dataset (slow with torch imported)
S4 = partial(AVSBenchS4Dataset, serialize_data=False)
MS3 = partial(AVSBenchMS3Dataset, serialize_data=False)
AVSS = partial(AVSSDataset, serialize_data=False)

PIPE = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks'),
    dict(type='LoadAVSAudio'),
    dict(type='PackAVSInputs'),
]
AVSS_PIPE = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='palette'),
    dict(type='AVSSResize', size=224, mode='resize'),
    dict(type='LoadAVSAudio', pad_mode='zeros'),
    dict(type='PackAVSInputs'),
]


def _first(root, cls=None, split='val', **kw):
    return (cls or S4)(data_root=root, split=split, **kw).get_data_info(0)


@pytest.mark.parametrize('key,idx', [('frame_paths', 3), ('mask_paths', 2), ('audio_path', None)])
def test_missing_file_s4(make_toy_root, key, idx):
    root = make_toy_root('s4')
    e = _first(root)
    path = e[key] if idx is None else e[key][idx]
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=osp.basename(path)):
        S4(data_root=root, split='val')
    # without the start-up check the loading transform names the file
    ds = S4(data_root=root, split='val', check_files=False, pipeline=PIPE)
    with pytest.raises(FileNotFoundError, match=osp.basename(path)):
        ds[0]


def test_missing_file_ms3_and_avss(make_toy_root):
    root = make_toy_root('ms3')
    e = _first(root, MS3, 'test')
    os.remove(e['mask_paths'][4])
    with pytest.raises(FileNotFoundError, match=osp.basename(osp.dirname(e['mask_paths'][4]))):
        MS3(data_root=root, split='test')
    root = make_toy_root('avss')
    e = _first(root, AVSS, 'val')
    os.remove(e['audio_path'])
    with pytest.raises(FileNotFoundError, match='audio.wav'):
        AVSS(data_root=root, split='val')
    ds = AVSS(data_root=root, split='val', check_files=False, pipeline=AVSS_PIPE)
    with pytest.raises(FileNotFoundError, match=e['video_id']):
        ds[0]


def test_avss_wrong_number_of_frames_or_labels(make_toy_root):
    root = make_toy_root('avss')
    e = _first(root, AVSS, 'val', subsets=['v2'])
    os.remove(e['frame_paths'][9])
    with pytest.raises(ValueError, match=f'{e["video_id"]}/frames.*9 .jpg frames, expected 10'):
        AVSS(data_root=root, split='val', subsets=['v2'])
    root = make_toy_root('avss')
    e = _first(root, AVSS, 'test', subsets=['v1m'])
    os.remove(e['mask_paths'][3])
    with pytest.raises(ValueError, match='labels_rgb.*4 label PNGs, expected 5'):
        AVSS(data_root=root, split='test', subsets=['v1m'])


def _rewrite(path, transform):
    with open(path) as f:
        lines = f.read().splitlines()
    with open(path, 'w') as f:
        f.write('\n'.join(transform(lines)) + '\n')


def test_csv_problems(make_toy_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='s4_meta_data.csv'):
        S4(data_root=str(tmp_path), split='val')
    root = make_toy_root('s4')
    csv_path = osp.join(root, 's4_meta_data.csv')
    _rewrite(csv_path, lambda ls: ls[:2] + [ls[2].rsplit(',', 1)[0]] + ls[3:])  # short row
    with pytest.raises(ValueError, match='s4_meta_data.csv, line 3: 3 fields'):
        S4(data_root=root, split='train')
    root = make_toy_root('ms3')
    csv_path = osp.join(root, 'ms3_meta_data.csv')
    _rewrite(csv_path, lambda ls: ls + ['someid,training'])
    with pytest.raises(ValueError, match="ms3_meta_data.csv, line .*unknown split 'training'"):
        MS3(data_root=root, split='train')
    _rewrite(
        csv_path, lambda ls: [ls[0]] + [x for x in ls[1:] if not x.endswith(',test') and not x.endswith('training')]
    )
    with pytest.raises(ValueError, match="no rows with split == 'test'"):
        MS3(data_root=root, split='test')
    _rewrite(csv_path, lambda ls: ['video_id,subset'] + ls[1:])
    with pytest.raises(ValueError, match=r"ms3_meta_data.csv: missing column\(s\) \['split'\]"):
        MS3(data_root=root, split='train')
    root = make_toy_root('avss')
    csv_path = osp.join(root, 'metadata.csv')
    _rewrite(csv_path, lambda ls: [ls[0].replace('label', 'subset')] + ls[1:])
    with pytest.raises(ValueError, match=r"metadata.csv: missing column\(s\) \['label'\]"):
        AVSS(data_root=root, split='train')


def test_video_missing_from_csv_is_not_used(make_toy_root):
    """A video on disk without a CSV row is ignored (as official); a row without files errors."""
    root = make_toy_root('s4', {'val': 2})
    csv_path = osp.join(root, 's4_meta_data.csv')
    full = S4(data_root=root, split='val')
    _rewrite(csv_path, lambda ls: [x for x in ls if full.get_data_info(0)['video_id'] not in x])
    assert len(S4(data_root=root, split='val')) == len(full) - 1
    _rewrite(csv_path, lambda ls: ls + ['ghostvideo_0,0,red_circle,val'])
    with pytest.raises(FileNotFoundError, match='ghostvideo_0'):
        S4(data_root=root, split='val')


def test_label2idx_problems(make_toy_root):
    root = make_toy_root('avss')
    with open(osp.join(root, 'label2idx.json'), 'w') as f:
        json.dump({'background': 1, 'dog': 2}, f)
    with pytest.raises(ValueError, match='label2idx.json.*71 entries'):
        AVSS(data_root=root, split='train')


def test_unreadable_image_in_dataset(make_toy_root):
    root = make_toy_root('ms3')
    e = _first(root, MS3, 'train')
    with open(e['frame_paths'][1], 'wb') as f:
        f.write(b'not a png')
    ds = MS3(data_root=root, split='train', pipeline=PIPE)
    with pytest.raises(ValueError, match=osp.basename(e['frame_paths'][1])):
        ds[0]
    with open(e['mask_paths'][0], 'wb') as f:
        f.write(b'')
    with open(e['frame_paths'][1], 'wb') as f:
        f.write(open(e['frame_paths'][0], 'rb').read())
    with pytest.raises(ValueError, match=osp.basename(e['mask_paths'][0])):
        ds[0]


@pytest.mark.parametrize(
    'obj,err',
    [
        (torch.zeros(4, 96, 64), ValueError),
        ({'not': 'a tensor'}, ValueError),
        (np.zeros((5, 1, 96, 64)), pickle.UnpicklingError),
    ],
)
def test_bad_pkl_in_dataset(make_toy_root, obj, err):
    root = make_toy_root('s4')
    e = _first(root)
    with open(e['audio_path'], 'wb') as f:
        pickle.dump(obj, f, protocol=4)
    ds = S4(data_root=root, split='val', pipeline=PIPE)
    with pytest.raises(err, match=osp.basename(e['audio_path'])):
        ds[0]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_pkl_in_dataset(make_toy_root, tmp_path):
    root = make_toy_root('s4')
    e = _first(root)
    marker = tmp_path / 'executed'
    with open(e['audio_path'], 'wb') as f:
        pickle.dump(_Evil(marker), f, protocol=4)
    ds = S4(data_root=root, split='val', pipeline=PIPE)
    with pytest.raises(pickle.UnpicklingError, match=osp.basename(e['audio_path'])):
        ds[0]
    assert not marker.exists()


@pytest.mark.parametrize('case', ['short', 'silent', '8000', '44100', '48000', 'stereo'])
def test_wav_variants_in_dataset(make_toy_root, case):
    """S4 with audio_source='wav': every variant loads as documented."""
    root = make_toy_root('s4')
    ds = S4(data_root=root, split='val', audio_source='wav', pipeline=PIPE)
    path = ds.get_data_info(0)['audio_path']
    x, rate = sf.read(path, dtype='float64')
    ref = ds[0]['audio'].numpy()
    if case == 'short':
        sf.write(path, x[: int(1.5 * rate)], rate, subtype='PCM_16')
        a = ds[0]['audio'].numpy()
        np.testing.assert_allclose(a[0], ref[0], atol=1e-6)
        assert all(np.array_equal(a[t], a[0]) for t in range(1, 5))  # 1 example, repeated
        sf.write(path, x[: int(0.5 * rate)], rate, subtype='PCM_16')
        with pytest.raises(ValueError, match=osp.basename(path)):
            ds[0]
    elif case == 'silent':
        sf.write(path, np.zeros_like(x), rate, subtype='PCM_16')
        np.testing.assert_allclose(ds[0]['audio'].numpy(), np.log(0.01), rtol=1e-6)
    elif case == 'stereo':
        sf.write(path, np.stack([x, x], 1), rate, subtype='PCM_16')
        np.testing.assert_allclose(ds[0]['audio'].numpy(), ref, atol=1e-5)
    else:
        import resampy

        new_rate = int(case)
        sf.write(path, resampy.resample(x, rate, new_rate), new_rate, subtype='PCM_16')
        a = ds[0]['audio'].numpy()
        assert a.shape == ref.shape == (5, 1, 96, 64)
        # compare the bands carrying the toy sounds that survive the new Nyquist frequency
        lo, hi = 1127 * np.log(1 + 125 / 700), 1127 * np.log(1 + 7500 / 700)
        upper_hz = 700 * (np.exp(np.linspace(lo, hi, 66)[2:] / 1127) - 1)
        keep = (ref.mean((0, 1, 2)) > -2.0) & (upper_hz < 0.45 * min(new_rate, 16000))
        assert keep.sum() >= 3
        np.testing.assert_allclose(a[..., keep], ref[..., keep], atol=0.3)
