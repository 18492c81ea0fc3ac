"""tools/analysis_tools/benchmark_data.py: the data pipeline benchmark runs the config's pipeline on real files."""

import json
import os.path as osp

import pytest
from _tools import load_tool

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(ROOT, 'configs', 'ccformer_pvt_s4.py')


def _tool():
    return load_tool('tools/analysis_tools/benchmark_data.py', 'ccformer_benchmark_data')


@pytest.mark.parametrize('split', ['train', 'test'])
def test_benchmark_data_runs_the_config_pipeline(toy_s4_root, tmp_path, split):
    out = tmp_path / 'data.json'
    res = _tool().main(
        [CONFIG, '--data-root', toy_s4_root, '--split', split, '--clips', '4', '--warmup', '1', '--json', str(out)]
    )
    assert json.loads(out.read_text()) == res
    assert res['frames_per_clip'] == 5
    # the paper's train pipeline pads/crops every clip to 224 x 224; test keeps the stored 64 x 64 toy frames
    assert res['frame_shape'] == ([224, 224] if split == 'train' else [64, 64])
    assert res['clips_per_s_per_worker'] == pytest.approx(1 / res['median_s_per_clip'])


def test_benchmark_data_empty_split_names_the_csv(make_toy_root):
    root = make_toy_root('s4')
    csv = osp.join(root, 's4_meta_data.csv')
    lines = open(csv).read().splitlines()
    with open(csv, 'w') as f:
        f.write('\n'.join(line for line in lines if not line.endswith(',test')) + '\n')
    with pytest.raises(ValueError, match=r"s4_meta_data.csv: no rows with split == 'test'"):
        _tool().main([CONFIG, '--data-root', root, '--split', 'test', '--clips', '1'])
