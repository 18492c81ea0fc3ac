"""Checkpoint loading never executes code (projects/ccformer/engine/safe_checkpoint.py), and strict key checks."""

import argparse
import collections
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

import projects.ccformer  # noqa: F401  (installs the safe loaders)
from projects.ccformer.engine.safe_checkpoint import (
    TRUST_ENV,
    CheckpointMismatchError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    check_state_dict_fits,
    install_safe_loaders,
    load_checkpoint_file,
    load_model_checkpoint,
    trust_checkpoint,
)


class _Payload:
    """Unpickling calls ``os.system('touch MARKER')``: the marker file shows whether code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def _mmengine_checkpoint(path: str) -> dict:
    """What mmengine 0.11's Runner.save_checkpoint writes: meta with the config text, a message hub with
    HistoryBuffers (numpy arrays) and numpy scalars, optimizer and scheduler states."""
    hub = MessageHub.get_instance('safe_checkpoint_test')
    for v in (0.5, 0.25):
        hub.update_scalar('train/loss', v)
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('best_score', 42.0)
    ckpt = dict(
        meta=dict(
            epoch=2,
            iter=6,
            cfg="model = dict(type='CCFormer')\n",
            seed=123,
            dataset_meta=dict(classes=('background', 'sounding object'), palette=[[0, 0, 0]]),
        ),
        state_dict=collections.OrderedDict(w=torch.arange(4.0)),
        message_hub=hub.state_dict(),
        optimizer=dict(state={0: dict(step=torch.tensor(6.0))}, param_groups=[dict(lr=1e-3, params=[0])]),
        param_schedulers=[dict(last_epoch=2, base_values=[1e-3])],
    )
    torch.save(ckpt, path)
    return ckpt


def test_mmengine_checkpoint_loads_on_the_safe_path(tmp_path):
    """The allowlist covers what mmengine writes; without it weights_only refuses the same file."""
    path = str(tmp_path / 'epoch_2.pth')
    _mmengine_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    ckpt = load_checkpoint_file(path)
    assert torch.equal(ckpt['state_dict']['w'], torch.arange(4.0))
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer) and loss.mean() == pytest.approx(0.375) and loss.current() == 0.25
    assert ckpt['message_hub']['runtime_info']['eta'] == 12.5
    assert ckpt['meta']['dataset_meta']['classes'] == ('background', 'sounding object')
    # mmengine's own entry points go through the same loader
    assert torch.equal(_load_checkpoint(path, map_location='cpu')['state_dict']['w'], torch.arange(4.0))


@pytest.mark.parametrize('writer', ['torch.save', 'pickle.dump'])
def test_payload_is_refused_and_never_runs(tmp_path, writer):
    path, marker = str(tmp_path / 'evil.pth'), str(tmp_path / 'PWNED')
    obj = dict(state_dict=dict(w=torch.zeros(2)), meta=_Payload(marker))
    if writer == 'torch.save':
        torch.save(obj, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump(obj, f)
    for load in (
        load_checkpoint_file,
        lambda p: _load_checkpoint(p, map_location='cpu'),
        lambda p: CheckpointLoader.load_checkpoint(p),
    ):
        with pytest.raises(UnsafeCheckpointError) as exc:
            load(path)
        msg = str(exc.value)
        assert path in msg and 'posix.system' in msg and '--trust-checkpoint' in msg and TRUST_ENV in msg
    assert not osp.exists(marker)


def test_getattr_is_admitted_only_for_history_buffer_methods(tmp_path):
    class _Lookup:
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    path = str(tmp_path / 'lookup.pth')
    torch.save(dict(x=_Lookup()), path)
    with pytest.raises(UnsafeCheckpointError, match='builtins.getattr'):
        load_checkpoint_file(path)


def test_trusted_file_opt_in(tmp_path, monkeypatch):
    """A file needing full unpickling loads only when opted in (env var or trust_checkpoint), one file at a time."""
    path, other = str(tmp_path / 'legacy.pth'), str(tmp_path / 'other.pth')
    for p in (path, other):
        torch.save(dict(state_dict=dict(w=torch.ones(1)), args=argparse.Namespace(lr=0.1)), p)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UnsafeCheckpointError, match='argparse.Namespace'):
        load_checkpoint_file(path)
    monkeypatch.setenv(TRUST_ENV, path)
    assert load_checkpoint_file(path)['args'].lr == 0.1
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(other)
    monkeypatch.delenv(TRUST_ENV)
    trust_checkpoint(other)
    assert os.environ[TRUST_ENV] == osp.realpath(other)
    assert load_checkpoint_file(other)['args'].lr == 0.1


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'garbage'])
def test_truncated_or_corrupt_checkpoint(tmp_path, damage):
    good = str(tmp_path / 'good.pth')
    _mmengine_checkpoint(good)
    data = open(good, 'rb').read()
    bad = str(tmp_path / f'{damage}.pth')
    with open(bad, 'wb') as f:
        f.write(
            {'truncated': data[: len(data) // 2], 'empty': b'', 'garbage': np.random.default_rng(0).bytes(4096)}[damage]
        )
    with pytest.raises(CorruptCheckpointError, match=f'checkpoint {bad}.*truncated or corrupt'):
        load_checkpoint_file(bad)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))


def test_remote_schemes_are_weights_only(tmp_path):
    """Schemes other than local files (http, torchvision://, ...) run their loader with torch.load forced to
    weights-only, even where the loader asks for weights_only=False."""
    path, marker = str(tmp_path / 'evil.pth'), str(tmp_path / 'PWNED')
    torch.save(dict(meta=_Payload(marker)), path)

    def load_from_fake(filename, map_location=None):
        return torch.load(path, map_location=map_location, weights_only=False)

    CheckpointLoader.register_scheme('fake://', load_from_fake)
    try:
        install_safe_loaders()
        with pytest.raises(UnsafeCheckpointError, match='fake://model.pth'):
            CheckpointLoader.load_checkpoint('fake://model.pth')
        assert not osp.exists(marker)
        torch.save(dict(state_dict=dict(w=torch.ones(1))), path)
        assert torch.equal(load_checkpoint_file('fake://model.pth')['state_dict']['w'], torch.ones(1))
    finally:
        CheckpointLoader._schemes.pop('fake://', None)
    assert os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD') is None


class _Frozen(torch.nn.Module):
    def __init__(self, checkpoint=None):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)
        self.frozen = True
        self.init_cfg = dict(type='Pretrained', checkpoint=checkpoint) if checkpoint else None
        self.loaded = False

    def init_weights(self):
        state = load_checkpoint_file(self.init_cfg['checkpoint'])
        self.load_state_dict(state)
        self.loaded = True


class _Model(torch.nn.Module):
    def __init__(self, pretrained=None):
        super().__init__()
        self.head = torch.nn.Linear(2, 3)
        self.audio_encoder = _Frozen(pretrained)


def test_state_dict_must_fit(tmp_path):
    model = _Model()
    own = model.state_dict()
    assert check_state_dict_fits(model, own, 'ok.pth', 'cfg.py') == []
    other = {'backbone.conv.weight': torch.zeros(1), 'head.weight': torch.zeros(3, 2)}
    with pytest.raises(CheckpointMismatchError) as exc:
        check_state_dict_fits(model, other, 'other.pth', 'configs/x.py')
    msg = str(exc.value)
    assert 'other.pth' in msg and 'configs/x.py' in msg and 'backbone.conv.weight' in msg and 'head.bias' in msg
    assert '--allow-partial-checkpoint' in msg
    wrong_shape = dict(own, **{'head.weight': torch.zeros(4, 2)})
    with pytest.raises(CheckpointMismatchError, match=r'head.weight \(4, 2\) vs \(3, 2\)'):
        check_state_dict_fits(model, wrong_shape, 'shape.pth')
    assert check_state_dict_fits(model, other, 'other.pth', allow_partial=True) == []  # warns only


def test_frozen_pretrained_part_may_be_absent(tmp_path):
    """A frozen module with its own Pretrained file (the frozen VGGish) may be left out of a checkpoint; it is then
    loaded from that file. Without such a file the missing keys are refused."""
    vggish = str(tmp_path / 'vggish.pth')
    ref = _Frozen()
    torch.save(ref.state_dict(), vggish)
    trained = _Model()
    ckpt = str(tmp_path / 'published.pth')
    torch.save(dict(state_dict={k: v for k, v in trained.state_dict().items() if k.startswith('head.')}), ckpt)
    model = _Model(pretrained=vggish)
    load_model_checkpoint(model, ckpt)
    assert model.audio_encoder.loaded
    assert torch.equal(model.audio_encoder.fc.weight, ref.fc.weight)
    assert torch.equal(model.head.weight, trained.head.weight)
    with pytest.raises(CheckpointMismatchError, match='audio_encoder.fc.weight'):
        load_model_checkpoint(_Model(), ckpt)


def _coco_detector_checkpoint(path: str, model: torch.nn.Module, meta) -> dict:
    """An mmdet-style detector checkpoint: random ``backbone.*`` weights shaped like ``model.backbone``, an FPN
    neck and heads, and a ``neck.*`` key that also names a parameter of ``model`` (which must not be loaded)."""
    own_neck_key, own_neck = next(iter(model.neck.state_dict().items()))
    state = collections.OrderedDict(
        ('backbone.' + k, torch.rand_like(v) if v.is_floating_point() else v + 3)
        for k, v in model.backbone.state_dict().items()
    )
    state.update(
        {
            'neck.fpn_convs.0.conv.weight': torch.ones(8, 8, 3, 3),
            'rpn_head.rpn_cls.weight': torch.ones(3, 8),
            'roi_head.bbox_head.fc_cls.weight': torch.ones(81, 16),
            'neck.' + own_neck_key: torch.full_like(own_neck, 7.0),
        }
    )
    torch.save(dict(meta=meta, state_dict=state), path)
    return state


@pytest.mark.parametrize('payload', [False, True])
def test_coco_backbone_loads_by_prefix_on_the_safe_path(tmp_path, payload):
    """The COCO ResNet-50 configs' init (Pretrained, prefix='backbone.') loads the detector's backbone weights
    only, through the weights-only loader: a detector file holding code is refused before the code runs."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    root = osp.join(osp.dirname(__file__), '..', '..')
    coco_init = Config.fromfile(
        osp.join(root, 'configs/ccformer/ccformer_r50-coco_1xb2-60e_avsbench-s4-224x224.py')
    ).model.backbone.init_cfg
    assert coco_init.prefix == 'backbone.' and 'coco' in coco_init.checkpoint
    cfg = Config.fromfile(osp.join(root, 'configs/ccformer/ccformer_tiny-paper_1xb2-toy_avsbench-s4-64x64.py')).model
    path, marker = str(tmp_path / 'mask_rcnn_coco.pth'), str(tmp_path / 'PWNED')
    cfg.backbone.init_cfg = dict(coco_init, checkpoint=path)  # the tiny ResNet stands in for ResNet-50
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    meta = dict(mmdet_version='2.0.0', CLASSES=('person', 'bicycle'), config='model = dict(...)')
    state = _coco_detector_checkpoint(path, model, _Payload(marker) if payload else meta)
    if payload:
        with pytest.raises(UnsafeCheckpointError, match='posix.system'):
            model.init_weights()
        assert not osp.exists(marker)
        return
    model.init_weights()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state['backbone.' + key]), key
    own_neck_key, own_neck = next(iter(model.neck.state_dict().items()))  # the detector's neck is not loaded
    assert state['neck.' + own_neck_key].eq(7.0).all() and not own_neck.eq(7.0).any()


def test_trust_opt_in_for_a_path_with_the_separator(tmp_path, monkeypatch):
    """A path holding ':' (os.pathsep) is trusted as a whole: the list is kept as JSON (before: split at ':', so the
    opt-in never matched and the file was refused anyway)."""
    folder = tmp_path / 'run:2'
    folder.mkdir()
    path, other = str(folder / 'legacy.pth'), str(tmp_path / 'plain.pth')
    for p in (path, other):
        torch.save(dict(state_dict=dict(w=torch.ones(1)), args=argparse.Namespace(lr=0.1)), p)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UnsafeCheckpointError, match=r'CCFORMER_TRUSTED_CHECKPOINTS=\'\[".*run:2/legacy.pth"\]\''):
        load_checkpoint_file(path)
    trust_checkpoint(other)
    trust_checkpoint(path)
    assert json.loads(os.environ[TRUST_ENV]) == [osp.realpath(other), osp.realpath(path)]
    assert load_checkpoint_file(path)['args'].lr == 0.1 and load_checkpoint_file(other)['args'].lr == 0.1
    monkeypatch.setenv(TRUST_ENV, json.dumps([path]))  # set by hand as JSON
    assert load_checkpoint_file(path)['args'].lr == 0.1
    monkeypatch.setenv(TRUST_ENV, '["unclosed')
    with pytest.raises(ValueError, match='not a valid JSON list'):
        load_checkpoint_file(other)
