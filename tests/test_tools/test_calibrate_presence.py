"""tools/analysis_tools/calibrate_presence.py on the toy S4 validation split: the calibrated checkpoint decides as
the tool reports, the input checkpoint is untouched and nothing is overwritten without --force."""

import hashlib
import os.path as osp

import pytest
import torch
from _tools import load_tool

from projects.ccformer.datasets.audio import silent_examples
from projects.ccformer.engine.presence_calibration import PRESENCE_BIAS_KEY, balanced_accuracy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')
PAPER_CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-paper_1xb2-toy_avsbench-s4-64x64.py')

TOOL = 'tools/analysis_tools/calibrate_presence.py'


def _tool():
    return load_tool(TOOL)


def _save_model(config, path, bias=None):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import projects.ccformer  # noqa: F401

    init_default_scope('mmseg')
    torch.manual_seed(0)
    state = MODELS.build(Config.fromfile(config).model).state_dict()
    if bias is not None:
        state[PRESENCE_BIAS_KEY] = torch.tensor(float(bias))
    # as an EMA config saves it: the raw weights for resuming, here with another presence bias
    raw = {f'module.{k}': v.clone() for k, v in state.items()}
    raw[f'module.{PRESENCE_BIAS_KEY}'] = torch.tensor(1.0)
    torch.save(dict(state_dict=state, ema_state_dict=raw, meta=dict(seed=0)), str(path))
    return str(path)


def _digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def test_calibration_moves_a_biased_decision(toy_s4_root, tmp_path):
    """A presence bias of +50 says "something sounds" on every frame; the calibrated model decides as reported."""
    tool = _tool()
    ckpt = _save_model(CONFIG, tmp_path / 'biased.pth', bias=50.0)
    digest = _digest(ckpt)
    out = str(tmp_path / 'calibrated.pth')
    argv = [CONFIG, ckpt, '--out', out, '--data-root', toy_s4_root, '--conditions', 'silence', 'noise']
    report = tool.main(argv)
    assert _digest(ckpt) == digest
    assert report['before']['TNR'] == 0.0 and report['conditions'] == ['original', 'silence', 'noise']
    # positives: the labelled val frames whose ground truth has foreground, with the true audio only; frames whose
    # audio is digital silence are left out (the config's empty_when_silent empties them whatever the presence)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from projects.ccformer.engine import set_data_root

    cfg = Config.fromfile(CONFIG)
    set_data_root(cfg, toy_s4_root)
    init_default_scope('mmseg')
    val = DATASETS.build(cfg.val_dataloader.dataset)
    items = [val[i] for i in range(len(val))]
    masks = [item['data_samples'].gt_sem_seg.data.reshape(5, -1) for item in items]
    silent = [silent_examples(item['audio']).reshape(5) for item in items]
    positives = sum(int((((m > 0) & (m != 255)).any(1) & ~q).sum()) for m, q in zip(masks, silent))
    num_silent = sum(int(q.sum()) for q in silent)
    assert 0 < positives < 5 * len(val)
    # the true audio without its silent seconds, none of the silence condition, every frame of noise
    assert report['positive_frames'] == positives and report['frames'] == 2 * 5 * len(val) - num_silent
    assert report['margin'] < -40 and report['after']['balanced'] > report['before']['balanced']
    saved = torch.load(out, weights_only=True)
    assert saved['meta']['presence_calibration'] == report and saved['meta']['seed'] == 0
    assert saved['state_dict'][PRESENCE_BIAS_KEY].item() == pytest.approx(50.0 + report['margin'])
    assert saved['ema_state_dict'][f'module.{PRESENCE_BIAS_KEY}'].item() == pytest.approx(1.0 + report['margin'])

    # the written checkpoint, loaded as users load it, gives the 'after' figures with no shift
    from projects.ccformer.apis import init_avs_model

    per_condition = tool.collect(init_avs_model(cfg, out), cfg, ['silence', 'noise'], 0, None)
    scores = torch.cat([torch.from_numpy(s) for s, _ in per_condition.values()]).numpy()
    labels = torch.cat([torch.from_numpy(lab) for _, lab in per_condition.values()]).numpy()
    assert balanced_accuracy(scores, labels) == pytest.approx(report['after'])

    with pytest.raises(FileExistsError, match='--force'):
        tool.main(argv)
    assert tool.main(argv + ['--force'])['margin'] == pytest.approx(report['margin'])


def test_refusals(toy_s4_root, tmp_path):
    tool = _tool()
    ckpt = _save_model(CONFIG, tmp_path / 'm.pth')
    with pytest.raises(ValueError, match='input checkpoint'):
        tool.main([CONFIG, ckpt, '--out', ckpt])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        tool.main([CONFIG, str(tmp_path / 'missing.pth'), '--out', str(tmp_path / 'o.pth')])
    with pytest.raises(ValueError, match='--offscreen-audio'):
        tool.main([CONFIG, ckpt, '--out', str(tmp_path / 'o.pth'), '--conditions', 'offscreen_recorded'])
    with pytest.raises(ValueError, match='add it to --conditions'):
        tool.main(
            [CONFIG, ckpt, '--out', str(tmp_path / 'o.pth'), '--offscreen-audio', 'assets:recorded/bank']
            + ['--conditions', 'silence']
        )
    paper = _save_model(PAPER_CONFIG, tmp_path / 'paper.pth')
    with pytest.raises(ValueError, match='no presence head'):
        tool.main([PAPER_CONFIG, paper, '--out', str(tmp_path / 'o.pth'), '--data-root', toy_s4_root])
    assert not osp.exists(tmp_path / 'o.pth')


def test_default_conditions_leave_silence_to_the_rule(toy_s4_root, tmp_path):
    """A model with empty_when_silent (the robust configs) empties digitally silent frames whatever the presence
    says, so by default the calibration does not hear silence; without the rule it does."""
    tool = _tool()
    ckpt = _save_model(CONFIG, tmp_path / 'm.pth')
    ruled = tool.main([CONFIG, ckpt, '--out', str(tmp_path / 'a.pth'), '--data-root', toy_s4_root])
    plain = tool.main(
        [CONFIG, ckpt, '--out', str(tmp_path / 'b.pth'), '--data-root', toy_s4_root]
        + ['--cfg-options', 'model.empty_when_silent=False']
    )
    assert ruled['conditions'][:2] == ['original', 'noise']  # offscreen too where the clips' kinds are known
    assert plain['conditions'] == ['original', 'silence'] + ruled['conditions'][1:]


def test_frames_emptied_by_the_rule_do_not_move_the_threshold(toy_ms3_root, tmp_path):
    """The toy MS3 clips have digitally silent seconds: a model with empty_when_silent leaves them out of the
    calibration, also with the clips' own audio."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from projects.ccformer.engine import set_data_root

    config = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-ms3-64x64.py')
    cfg = Config.fromfile(config)
    set_data_root(cfg, toy_ms3_root)
    init_default_scope('mmseg')
    val = DATASETS.build(cfg.val_dataloader.dataset)
    num_silent = sum(int(silent_examples(val[i]['audio']).sum()) for i in range(len(val)))
    assert num_silent > 0
    tool = _tool()
    ckpt = _save_model(config, tmp_path / 'm.pth')
    argv = [config, ckpt, '--data-root', toy_ms3_root, '--conditions', 'noise']
    ruled = tool.main(argv + ['--out', str(tmp_path / 'a.pth')])
    plain = tool.main(argv + ['--out', str(tmp_path / 'b.pth'), '--cfg-options', 'model.empty_when_silent=False'])
    assert plain['frames'] - ruled['frames'] == num_silent
