"""``set_data_root`` (``--data-root`` of the tools): every dataloader's dataset, wrapped ones included."""

import os.path as osp

import pytest
from mmengine.config import Config

from projects.ccformer.engine import set_data_root

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-paper_1xb2-toy_avsbench-s4-64x64.py')  # unwrapped


def test_plain_config():
    cfg = Config.fromfile(CONFIG)
    assert cfg.test_dataloader.dataset.data_root == 'data/toy/s4'
    changed = set_data_root(cfg, '/data/s4')
    assert changed == [f'{k}_dataloader.dataset' for k in ('train', 'val', 'test')]
    for key in ('train', 'val', 'test'):
        assert cfg[f'{key}_dataloader'].dataset.data_root == '/data/s4'
    assert cfg.data_root == '/data/s4'
    assert cfg.test_dataloader.dataset.type == 'AVSBenchS4Dataset'


def test_robust_tiny_config_sets_the_wrapped_root():
    cfg = Config.fromfile(CONFIG.replace('tiny-paper', 'tiny-robust'))
    changed = set_data_root(cfg, '/data/s4')
    assert changed == ['train_dataloader.dataset.dataset', 'val_dataloader.dataset', 'test_dataloader.dataset']
    assert cfg.train_dataloader.dataset.type == 'NegativeAudioDataset'
    assert cfg.train_dataloader.dataset.dataset.data_root == '/data/s4'


def test_none_leaves_the_config_alone():
    cfg = Config.fromfile(CONFIG)
    before = cfg.to_dict()
    assert set_data_root(cfg, None) == []
    assert cfg.to_dict() == before


def test_wrapped_datasets():
    """Wrappers (``dataset=``, ``datasets=[...]``, nested) keep their own keys; the datasets inside get the root."""
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(
                    type='RepeatDataset',
                    times=2,
                    dataset=dict(
                        type='NegativeAudioDataset',
                        prob=0.5,
                        dataset=dict(type='AVSBenchMS3Dataset', data_root='old', split='train'),
                    ),
                )
            ),
            val_dataloader=dict(
                dataset=dict(
                    type='ConcatDataset',
                    datasets=[
                        dict(type='AVSBenchMS3Dataset', data_root='old', split='val'),
                        dict(
                            type='AudioConditionDataset',
                            condition='silence',
                            dataset=dict(type='AVSBenchMS3Dataset', data_root='old', split='val'),
                        ),
                    ],
                )
            ),
            test_dataloader=None,
        )
    )
    changed = set_data_root(cfg, '/d')
    assert changed == [
        'train_dataloader.dataset.dataset.dataset',
        'val_dataloader.dataset.datasets[0]',
        'val_dataloader.dataset.datasets[1].dataset',
    ]
    train = cfg.train_dataloader.dataset
    assert 'data_root' not in train and 'data_root' not in train.dataset
    assert train.dataset.dataset.data_root == '/d' and train.dataset.prob == 0.5 and train.times == 2
    val = cfg.val_dataloader.dataset
    assert 'data_root' not in val and 'data_root' not in val.datasets[1]
    assert val.datasets[0].data_root == val.datasets[1].dataset.data_root == '/d'


def test_leaf_without_data_root_gets_one():
    cfg = Config(dict(test_dataloader=dict(dataset=dict(type='AVSBenchS4Dataset', split='test'))))
    assert set_data_root(cfg, '/d') == ['test_dataloader.dataset']
    assert cfg.test_dataloader.dataset.data_root == '/d'


def test_datasets_from_different_roots_are_an_error():
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(
                    type='ConcatDataset',
                    datasets=[
                        dict(type='AVSBenchS4Dataset', data_root='a/Single-source'),
                        dict(type='AVSBenchMS3Dataset', data_root='a/Multi-sources'),
                    ],
                )
            )
        )
    )
    with pytest.raises(
        ValueError,
        match=r'train_dataloader reads several datasets from different roots .*'
        r'datasets\[1\].data_root=.a/Multi-sources.*--cfg-options',
    ):
        set_data_root(cfg, '/d')
    assert cfg.train_dataloader.dataset.datasets[0].data_root == 'a/Single-source'  # untouched


def test_dataset_instance_is_an_error():
    cfg = Config(dict(test_dataloader=dict(dataset=dict(type='AudioConditionDataset', dataset=object()))))
    with pytest.raises(TypeError, match='test_dataloader.dataset.dataset must be a dataset config dict'):
        set_data_root(cfg, '/d')
