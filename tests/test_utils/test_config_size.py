"""The frame size and clip length a config's model runs at (``projects.ccformer.utils.config_input_size`` /
``config_num_frames``), and the tools that take them from the config unless a flag overrides them."""

import glob
import json
import os.path as osp

import pytest
from _tools import load_tool
from mmengine.config import Config

from projects.ccformer.utils import config_input_size, config_num_frames

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(c for c in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True) if '_base_' not in c)
TINY_S4 = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')


@pytest.mark.parametrize('config', CONFIGS, ids=[osp.relpath(c, ROOT) for c in CONFIGS])
def test_every_config_names_its_size_and_clip_length(config):
    name = osp.basename(config)
    assert config_input_size(config) == ((64, 64) if 'tiny' in name else (224, 224))
    assert config_num_frames(Config.fromfile(config)) == (10 if 'avss' in name else 5)


def test_fallbacks_and_the_error():
    import projects.ccformer  # noqa: F401  (registers the dataset classes)

    cfg = Config(
        dict(
            test_pipeline=[dict(type='LoadAVSFrames')],
            train_dataloader=dict(dataset=dict(pipeline=[dict(type='RandomCrop', crop_size=(96, 128))])),
            test_dataloader=dict(dataset=dict(type='AVSSDataset')),
        )
    )
    assert config_input_size(cfg) == (96, 128)  # the training crop when the test pipeline says nothing
    assert config_num_frames(cfg) == 10  # the test dataset class's NUM_FRAMES
    cfg.test_pipeline.append(dict(type='AVSSResize', size=160))
    assert config_input_size(cfg) == (160, 160)
    cfg.test_pipeline.insert(0, dict(type='LoadAVSFrames', num_frames=3, input_size=(48, 80)))
    assert config_input_size(cfg) == (48, 80)  # what mmseg.apis.inference_model resizes a video to
    assert config_num_frames(cfg) == 3
    assert config_input_size(Config(dict(test_pipeline=[dict(type='LoadAVSFrames')]))) is None
    with pytest.raises(ValueError, match='does not give the clip length'):
        config_num_frames(Config(dict(test_pipeline=[dict(type='LoadAVSFrames')])))


def test_get_flops_takes_the_clip_from_the_config(tmp_path, capsys):
    tool = load_tool('tools/analysis_tools/get_flops.py')
    tool.main([TINY_S4, '--json', str(tmp_path / 'a.json')])
    assert 'input: 1 clip x 5 frames x 3 x 64 x 64' in capsys.readouterr().out
    default = json.loads((tmp_path / 'a.json').read_text())
    assert (default['frames'], default['shape']) == (5, [64, 64])
    tool.main([TINY_S4, '--shape', '96', '96', '--frames', '2', '--json', str(tmp_path / 'b.json')])
    override = json.loads((tmp_path / 'b.json').read_text())
    assert (override['frames'], override['shape']) == (2, [96, 96])
    assert override['flops']['total'] != default['flops']['total']
