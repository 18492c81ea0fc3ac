"""tools/analysis_tools/empty_frames.py on the toy MS3 test split: the groups follow the ground truth and the data's
clip_kinds.json, the masks follow the model's decision, and bad inputs get clear errors."""

import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from _tools import load_tool
from PIL import Image

from projects.ccformer.engine.presence_calibration import PRESENCE_BIAS_KEY

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-ms3-64x64.py')
AVSS_CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avss-64x64.py')


def _tool():
    return load_tool('tools/analysis_tools/empty_frames.py')


def _save_model(path, bias=None):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import projects.ccformer  # noqa: F401

    init_default_scope('mmseg')
    torch.manual_seed(0)
    state = MODELS.build(Config.fromfile(CONFIG).model).state_dict()
    if bias is not None:
        state[PRESENCE_BIAS_KEY] = torch.tensor(float(bias))
    torch.save(dict(state_dict=state, meta=dict(seed=0)), str(path))
    return str(path)


def _expected_groups(root):
    """Frames per group of the test clips, read from the masks and clip_kinds.json directly."""
    with open(osp.join(root, 'clip_kinds.json')) as f:
        kinds = json.load(f)
    counts = dict(sounding=0, offscreen=0, quiet=0, visible_silent=0)
    masks = osp.join(root, 'ms3_data', 'gt_masks', 'test')
    for video_id in sorted(os.listdir(masks)):
        entry = kinds[video_id]
        for t in range(5):
            gt = np.array(Image.open(osp.join(masks, video_id, f'{video_id}_{t + 1}.png')))
            audible = set(entry['audible'][t])
            if (gt > 0).any():
                counts['sounding'] += 1
            elif not audible:
                counts['quiet'] += 1
            else:
                counts['visible_silent' if audible & set(entry['visible']) else 'offscreen'] += 1
    return counts


@pytest.fixture(scope='module')
def ms3_root(tmp_path_factory):
    """Eight toy MS3 test clips at 64 x 64: quiet seconds and off-screen seconds among them."""
    from projects.ccformer.datasets.toy import generate_toy_avsbench

    root = str(tmp_path_factory.mktemp('ms3') / 'Multi-sources')
    generate_toy_avsbench(root, 'ms3', {'train': 1, 'val': 1, 'test': 8}, seed=3, img_size=64)
    return root


def test_groups_follow_the_masks_and_the_kinds(ms3_root, tmp_path):
    report = _tool().main(
        [CONFIG, _save_model(tmp_path / 'm.pth'), '--data-root', ms3_root, '--out', str(tmp_path / 'r.json')]
    )
    groups = report['groups']
    expected = _expected_groups(ms3_root)
    assert expected['quiet'] and expected['offscreen'] and expected['sounding']  # the data test every group
    assert {g: groups[g]['frames'] for g in expected} == expected
    assert groups['unknown']['frames'] == 0 and report['clips'] == report['clips_with_kinds'] == 8
    empty = [groups[g] for g in ('offscreen', 'quiet', 'visible_silent', 'unknown')]
    assert groups['empty']['frames'] == sum(g['frames'] for g in empty) == 40 - expected['sounding']
    assert groups['empty']['masked'] == sum(g['masked'] for g in empty)
    with open(tmp_path / 'r.json') as f:
        assert json.load(f) == report


def test_a_closed_presence_gate_masks_nothing(ms3_root, tmp_path):
    """Presence bias -50: the model keeps no mask on any frame, sounding or not; +50 opens the gate, except on the
    quiet (digitally silent) seconds, which the robust config's ``empty_when_silent`` empties whatever the gate."""
    closed = _tool().main([CONFIG, _save_model(tmp_path / 'c.pth', bias=-50), '--data-root', ms3_root])
    opened_ckpt = _save_model(tmp_path / 'o.pth', bias=50)
    opened = _tool().main([CONFIG, opened_ckpt, '--data-root', ms3_root])
    no_rule = _tool().main(
        [CONFIG, opened_ckpt, '--data-root', ms3_root, '--cfg-options', 'model.empty_when_silent=False']
    )
    assert all(g['masked'] == 0 for g in closed['groups'].values())
    assert opened['groups']['quiet']['frames'] > 0 and opened['groups']['quiet']['masked'] == 0
    assert opened['groups']['offscreen']['masked'] > 0
    assert no_rule['groups']['quiet']['masked'] > 0
    frames = [{g: c['frames'] for g, c in r['groups'].items()} for r in (closed, opened, no_rule)]
    assert frames[0] == frames[1] == frames[2]


def test_without_kinds_every_empty_frame_is_unknown(make_toy_root, tmp_path):
    root = make_toy_root('ms3', {'train': 1, 'val': 1, 'test': 3}, img_size=64)
    os.remove(osp.join(root, 'clip_kinds.json'))
    report = _tool().main([CONFIG, _save_model(tmp_path / 'm.pth'), '--data-root', root])
    groups = report['groups']
    assert report['clips_with_kinds'] == 0 and groups['empty']['frames'] == groups['unknown']['frames'] > 0


def test_bad_inputs_are_named(toy_ms3_root, toy_avss_root, tmp_path):
    tool = _tool()
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        tool.main([CONFIG, str(tmp_path / 'missing.pth'), '--data-root', toy_ms3_root])
    with pytest.raises(ValueError, match='AVSS.*S4 / MS3'):
        tool.main([AVSS_CONFIG, _save_model(tmp_path / 'm.pth'), '--data-root', toy_avss_root])
