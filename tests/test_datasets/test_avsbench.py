"""AVSBench datasets on the toy data: entries, metainfo, full pipelines + data preprocessor."""

import csv
import json
import os
import os.path as osp
import pickle
from functools import partial

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

import projects.ccformer  # noqa: F401  (registers everything)
from projects.ccformer.datasets import AVSBenchMS3Dataset, AVSBenchS4Dataset, AVSSDataset, voc_palette
from projects.ccformer.datasets.audio import wav_to_logmel
from projects.ccformer.models.data_preprocessor import AVSDataPreprocessor

# serialize_data=False skips mmengine's gc.collect() per dataset (slow with torch imported)
S4 = partial(AVSBenchS4Dataset, serialize_data=False)
MS3 = partial(AVSBenchMS3Dataset, serialize_data=False)
AVSS = partial(AVSSDataset, serialize_data=False)

BINARY_PIPELINE = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    dict(type='PackAVSInputs'),
]


def _avss_pipeline(mode):
    return [
        dict(type='LoadAVSFrames'),
        dict(type='LoadAVSMasks', label_type='palette'),
        dict(type='AVSSResize', size=224, mode=mode),
        dict(type='LoadAVSAudio', pad_mode='zeros'),
        dict(type='PackAVSInputs'),
    ]


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _batch(dataset, n=2):
    return pseudo_collate([dataset[i] for i in range(n)])


def _read_mask(path):
    return (cv2.imread(path, cv2.IMREAD_UNCHANGED) > 127).astype(np.int64)


def test_s4_entries(toy_s4_root):
    rows = _csv(osp.join(toy_s4_root, 's4_meta_data.csv'))
    for split in ('train', 'val', 'test'):
        ds = S4(data_root=toy_s4_root, split=split)
        names = [r['name'] for r in rows if r['split'] == split]
        assert [ds.get_data_info(i)['video_id'] for i in range(len(ds))] == names
        e = ds.get_data_info(0)
        cat = next(r['category'] for r in rows if r['name'] == e['video_id'])
        name = e['video_id']
        assert e['category'] == cat and e['split'] == split and e['num_frames'] == 5
        assert e['frame_paths'][2] == osp.join(
            toy_s4_root, 's4_data', 'visual_frames', split, cat, name, f'{name}_3.png'
        )
        assert e['audio_path'] == osp.join(toy_s4_root, 's4_data', 'audio_log_mel', split, cat, f'{name}.pkl')
        assert e['frame_valid'] == [1] * 5
        if split == 'train':
            assert e['mask_paths'][1:] == [None] * 4 and e['gt_valid'] == [1, 0, 0, 0, 0]
        else:
            assert all(e['mask_paths']) and e['gt_valid'] == [1] * 5
        assert e['seg_fields'] == [] and e['reduce_zero_label'] is False
    assert ds.metainfo['classes'] == ('background', 'sounding object')
    assert len(ds.metainfo['palette']) == 2


def test_s4_category_index_numbers_the_categories_of_all_splits_alike(toy_s4_root, tmp_path):
    rows = _csv(osp.join(toy_s4_root, 's4_meta_data.csv'))
    categories = tuple(sorted({r['category'] for r in rows}))
    for split in ('train', 'test'):
        ds = S4(data_root=toy_s4_root, split=split, pipeline=BINARY_PIPELINE)
        assert ds.metainfo['categories'] == categories
        for i in range(len(ds)):
            e = ds.get_data_info(i)
            assert categories[e['category_index']] == e['category']
        assert ds[0]['data_samples'].metainfo['category_index'] == ds.get_data_info(0)['category_index']
    # a category found in the test split only still has its place (the CSV of every split counts)
    with open(osp.join(toy_s4_root, 's4_meta_data.csv')) as f:
        text = f.read()
    extra = tmp_path / 's4_meta_data.csv'
    extra.write_text(text.rstrip('\n') + '\nzzz_clip,0,aaa_only_in_test,test\n')
    ds = S4(data_root=toy_s4_root, ann_file=str(extra), split='train', check_files=False)
    assert ds.metainfo['categories'][0] == 'aaa_only_in_test'
    assert all(ds.get_data_info(i)['category_index'] >= 1 for i in range(len(ds)))


def test_s4_wav_source(toy_s4_root):
    ds = S4(data_root=toy_s4_root, split='val', audio_source='wav', pipeline=BINARY_PIPELINE)
    e = ds.get_data_info(0)
    assert e['audio_path'].endswith('.wav') and '/audio_wav/val/' in e['audio_path']
    audio = ds[0]['audio'].numpy()
    np.testing.assert_allclose(audio[:, 0], wav_to_logmel(e['audio_path'])[:5], rtol=1e-6)
    with pytest.raises(ValueError, match='audio_source'):
        S4(data_root=toy_s4_root, audio_source='mp3')


def test_s4_pipeline_and_preprocessor(toy_s4_root):
    ds = S4(data_root=toy_s4_root, split='train', pipeline=BINARY_PIPELINE)
    item = ds[0]
    e = ds.get_data_info(0)
    assert item['inputs'].shape == (5, 3, 64, 64) and item['inputs'].dtype == torch.uint8
    np.testing.assert_array_equal(
        item['inputs'][2].permute(1, 2, 0).numpy(), cv2.imread(e['frame_paths'][2])
    )  # BGR, as loaded
    gt = item['data_samples'].gt_sem_seg.data
    assert gt.shape == (5, 64, 64) and gt.dtype == torch.int64
    np.testing.assert_array_equal(gt[0].numpy(), _read_mask(e['mask_paths'][0]))
    assert gt[0].sum() > 0 and gt[1:].sum() == 0  # frame 1 only is labelled in S4 train
    with open(e['audio_path'], 'rb') as f:
        ref = pickle.load(f).detach().numpy()  # trusted toy file, for the comparison only
    np.testing.assert_array_equal(item['audio'].numpy(), ref)
    meta = item['data_samples'].metainfo
    assert meta['video_id'] == e['video_id'] and meta['gt_valid'] == [1, 0, 0, 0, 0]
    assert meta['img_path'] == e['frame_paths'][0] and meta['ori_shape'] == (64, 64)

    batch = AVSDataPreprocessor()(_batch(ds), training=True)
    assert batch['inputs'].shape == (2, 5, 3, 64, 64)
    assert batch['audio'].shape == (2, 5, 1, 96, 64)
    assert len(batch['data_samples']) == 2
    bgr = item['inputs'][0, :, 10, 10].float()
    expected = (bgr.flip(0) - torch.tensor([123.675, 116.28, 103.53])) / torch.tensor([58.395, 57.12, 57.375])
    torch.testing.assert_close(batch['inputs'][0, 0, :, 10, 10], expected)


def test_ms3_entries_and_pipeline(toy_ms3_root):
    ds = MS3(data_root=toy_ms3_root, split='val', pipeline=BINARY_PIPELINE)
    rows = [r for r in _csv(osp.join(toy_ms3_root, 'ms3_meta_data.csv')) if r['split'] == 'val']
    assert len(ds) == len(rows)
    e = ds.get_data_info(1)
    name = e['video_id']
    assert e['category'] == '' and e['gt_valid'] == [1] * 5
    assert e['frame_paths'][4] == osp.join(toy_ms3_root, 'ms3_data', 'visual_frames', name, f'{name}.mp4_5.png')
    assert e['mask_paths'][4] == osp.join(toy_ms3_root, 'ms3_data', 'gt_masks', 'val', name, f'{name}_5.png')
    item = ds[1]
    gt = item['data_samples'].gt_sem_seg.data.numpy()
    for t in range(5):
        np.testing.assert_array_equal(gt[t], _read_mask(e['mask_paths'][t]))
    assert set(np.unique(gt)) <= {0, 1}
    train = MS3(data_root=toy_ms3_root, split='train')
    assert all(all(train.get_data_info(i)['mask_paths']) for i in range(len(train)))


def test_toy_data_has_empty_ground_truth(toy_ms3_root, toy_s4_root):
    """Silent / off-screen seconds give empty masks somewhere in the toy data."""
    empty = 0
    for root, cls in ((toy_ms3_root, MS3), (toy_s4_root, S4)):
        for split in ('train', 'val', 'test'):
            ds = cls(data_root=root, split=split)
            for i in range(len(ds)):
                for p in ds.get_data_info(i)['mask_paths']:
                    if p is not None and _read_mask(p).sum() == 0:
                        empty += 1
    assert empty > 0


def test_avss_entries(toy_avss_root):
    rows = _csv(osp.join(toy_avss_root, 'metadata.csv'))
    ds = AVSS(data_root=toy_avss_root, split='train')
    assert len(ds) == sum(r['split'] == 'train' for r in rows)
    names = json.load(open(osp.join(toy_avss_root, 'label2idx.json')))
    assert len(ds.metainfo['classes']) == 71
    assert ds.metainfo['classes'][0] == 'background'
    assert ds.metainfo['classes'][names['red_circle'] - 1] == 'red_circle'
    assert ds.metainfo['palette'] == voc_palette(71)
    by_subset = {}
    for i in range(len(ds)):
        e = ds.get_data_info(i)
        by_subset.setdefault(e['category'], e)
        assert e['num_frames'] == 10 and len(e['frame_paths']) == 10
    v1s, v1m, v2 = by_subset['v1s'], by_subset['v1m'], by_subset['v2']
    assert v1s['frame_valid'] == [1] * 5 + [0] * 5 and v1s['gt_valid'] == [1] + [0] * 9
    assert v1s['frame_paths'][5:] == [None] * 5 and v1s['mask_paths'][1:] == [None] * 9
    assert v1m['gt_valid'] == [1] * 5 + [0] * 5 and v1m['mask_paths'][5:] == [None] * 5
    assert v2['frame_valid'] == [1] * 10 and v2['gt_valid'] == [1] * 10 and all(v2['mask_paths'])
    assert v1s['frame_paths'][0] == osp.join(toy_avss_root, 'v1s', v1s['video_id'], 'frames', '0.jpg')
    assert v1s['audio_path'] == osp.join(toy_avss_root, 'v1s', v1s['video_id'], 'audio.wav')
    val = AVSS(data_root=toy_avss_root, split='val', subsets=['v1s'])
    e = val.get_data_info(0)
    # v1s val/test: 5 real masks (the metric uses them) but the official loss flag [1, 0, ...]
    assert all(e['mask_paths'][:5]) and e['gt_valid'] == [1] + [0] * 9
    assert {val.get_data_info(i)['category'] for i in range(len(val))} == {'v1s'}
    with pytest.raises(ValueError, match='subsets'):
        AVSS(data_root=toy_avss_root, subsets=['v3'])


def test_avss_without_label2idx_uses_generic_names(make_toy_root):
    root = make_toy_root('avss')
    os.remove(osp.join(root, 'label2idx.json'))
    ds = AVSS(data_root=root, split='test')
    assert len(ds.metainfo['classes']) == 71 and ds.metainfo['classes'][5] == 'class_5'


@pytest.mark.parametrize('split,mode', [('train', 'short_side_crop'), ('val', 'resize')])
def test_avss_pipeline_and_preprocessor(toy_avss_root, split, mode):
    ds = AVSS(data_root=toy_avss_root, split=split, subsets=['v1m', 'v2'], pipeline=_avss_pipeline(mode))
    item = ds[0]
    e = ds.get_data_info(0)
    assert item['inputs'].shape == (10, 3, 224, 224)
    assert item['audio'].shape == (10, 1, 96, 64)
    gt = item['data_samples'].gt_sem_seg.data
    assert gt.shape == (10, 224, 224) and int(gt.max()) <= 4
    meta = item['data_samples'].metainfo
    assert meta['ori_shape'] == (224, 224) and meta['frame_shape'] == (60, 80)
    n = sum(e['frame_valid'])
    if n == 5:
        assert (item['audio'][5:] == 0).all() and (gt[5:] == 0).all()
        assert (item['inputs'][5:] == 0).all()
    # mask of a real frame equals the class-index PNG (labels_semantic), resized the same way
    sem = cv2.imread(e['mask_paths'][0].replace('labels_rgb', 'labels_semantic'), cv2.IMREAD_UNCHANGED)
    ref = ds.pipeline.transforms[2]  # AVSSResize
    out = ref.transform(dict(imgs=[np.zeros(sem.shape + (3,), np.uint8)], gt_masks=sem[None]))
    np.testing.assert_array_equal(gt[0].numpy(), out['gt_masks'][0])
    assert gt[0].max() > 0  # frame 0 always has a sounding object in the toy data

    batch = AVSDataPreprocessor()(_batch(ds), training=split == 'train')
    assert batch['inputs'].shape == (2, 10, 3, 224, 224)
    for b, sample in enumerate(batch['data_samples']):
        for t, valid in enumerate(sample.metainfo['frame_valid']):
            if not valid:
                assert (batch['inputs'][b, t] == 0).all()  # padded frames are 0 after norm


def test_indices_test_mode_and_serialization(toy_avss_root):
    ds = AVSSDataset(
        data_root=toy_avss_root,
        split='test',
        test_mode=True,
        indices=1,
        serialize_data=True,
        pipeline=_avss_pipeline('resize'),
    )
    assert len(ds) == 1 and ds.get_data_info(0)['frame_paths'][-1] is None
    assert ds[0]['inputs'].shape == (10, 3, 224, 224)


@pytest.mark.parametrize(
    'cfg_name,root_fixture,shape',
    [
        ('avsbench_s4.py', 'toy_s4_root', (5, 3, 64, 64)),
        ('avsbench_ms3.py', 'toy_ms3_root', (5, 3, 64, 64)),
        ('avss.py', 'toy_avss_root', (10, 3, 224, 224)),
    ],
)
def test_base_dataset_configs(request, cfg_name, root_fixture, shape):
    """The dataset bases build; val / test keep the official geometry, train crops the paper's 224 x 224."""
    from mmengine.config import Config
    from mmseg.registry import DATASETS

    cfg = Config.fromfile(osp.join(osp.dirname(__file__), '..', '..', 'configs', '_base_', 'datasets', cfg_name))
    assert cfg.train_dataloader.dataset.data_root.startswith('data/AVSBench/')
    root = request.getfixturevalue(root_fixture)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds_cfg = cfg[loader].dataset
        ds_cfg.update(data_root=root, serialize_data=False)
        ds = DATASETS.build(ds_cfg)
        item = ds[0]
        expected = shape[:2] + (224, 224) if loader == 'train_dataloader' else shape
        assert tuple(item['inputs'].shape) == expected
        assert item['data_samples'].gt_sem_seg.data.shape == (shape[0],) + expected[2:]
    assert cfg.val_evaluator.type in ('AVSBenchMetric', 'AVSSMetric')
