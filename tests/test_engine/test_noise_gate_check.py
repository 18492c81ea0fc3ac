"""The presence-gate check after validation (``engine/hooks/noise_gate_check_hook.py``): what it counts, what it
hears, what it logs and warns, and that it leaves training's random state alone."""

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmseg.structures import SegDataSample

from projects.ccformer.datasets.audio_conditions.synthesis import noise_logmel
from projects.ccformer.engine.hooks import NoiseGateCheckHook, noise_masked_frames
from projects.ccformer.models.segmentors.ccformer import CCFormer

T, SIZE = 3, 8


class GateModel(torch.nn.Module):
    """Stands in for a CCFormer: masks every pixel of a frame whose mean log-mel is above ``level``
    (``level=-inf``: a collapsed gate, masks whatever it hears; ``+inf``: masks nothing), records what it heard."""

    logit_threshold = 0.0
    frame_valid_from_samples = staticmethod(CCFormer.frame_valid_from_samples)

    def __init__(self, level=float('-inf'), num_classes=1, presence_head=True, map_loss_weight=0.0, fail=False):
        super().__init__()
        self.level, self.num_classes, self.fail = level, num_classes, fail
        self.decode_head = SimpleNamespace(
            presence_head=torch.nn.Identity() if presence_head else None,
            presence_map_loss_weight=map_loss_weight,
            presence_map_loss_type='bce',
        )
        self.heard, self.modes = [], []

    def data_preprocessor(self, batch, training):
        assert training is False
        return dict(batch)

    def forward(self, inputs, data_samples=None, mode='tensor', audio=None):
        assert mode == 'tensor' and not self.training
        if self.fail:
            raise RuntimeError('broken model')
        self.heard.append(audio.clone())
        n = inputs.shape[0]
        loud = audio.flatten(2).mean(-1) > self.level  # (N, T)
        logits = torch.full((n, T, self.num_classes, SIZE, SIZE), -1.0)
        if self.num_classes == 1:
            logits[loud] = 1.0
        else:
            logits[:, :, 0] = 1.0
            logits[:, :, 2, 2, 3][loud] = 2.0  # class 2 wins one pixel of a frame that hears something
        return logits


def _batches(valid=((1, 1, 1), (1, 1, 0)), repeat=2, img_shape=(SIZE, SIZE)):
    out = []
    for _ in range(repeat):
        samples = [SegDataSample(metainfo=dict(frame_valid=list(v), img_shape=img_shape)) for v in valid]
        n = len(valid)
        out.append(
            dict(inputs=torch.zeros(n, T, 3, SIZE, SIZE), data_samples=samples, audio=torch.zeros(n, T, 1, 96, 64))
        )
    return out


@pytest.mark.parametrize('num_classes', [1, 3])
def test_a_collapsed_gate_masks_every_real_frame_and_a_closed_one_none(num_classes):
    collapsed = GateModel(num_classes=num_classes)
    assert noise_masked_frames(collapsed, _batches()) == (10, 10)  # padded frames are not counted
    closed = GateModel(level=float('inf'), num_classes=num_classes)
    assert noise_masked_frames(closed, _batches()) == (0, 10)


def test_it_hears_seeded_white_noise_at_the_level_asked_for():
    model = GateModel()
    noise_masked_frames(model, _batches(), noise_dbfs=-30, seed=5)
    heard = torch.cat([a.reshape(-1, 1, 96, 64) for a in model.heard]).numpy()
    rng = np.random.default_rng(5)  # one generator, drawn batch after batch: 2 clips x 3 frames each
    assert np.array_equal(heard, np.concatenate([noise_logmel(rng, 6, -30), noise_logmel(rng, 6, -30)]))
    again = GateModel()
    noise_masked_frames(again, _batches(), noise_dbfs=-30, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(model.heard, again.heard))  # the same noise at every validation
    louder = GateModel()
    noise_masked_frames(louder, _batches(), noise_dbfs=-10, seed=5)
    assert louder.heard[0].mean() > model.heard[0].mean()


def test_it_counts_max_clips_exactly_and_restores_the_training_mode():
    model = GateModel()
    model.train()
    # batches of 2 clips with 3 + 2 real frames: 3 clips are the first batch and the first clip of the second
    assert noise_masked_frames(model, _batches(repeat=5), max_clips=3) == (8, 8)
    assert len(model.heard) == 2 and model.training


def test_masks_on_the_batch_padding_are_not_counted():
    class PaddingOnly(GateModel):
        def forward(self, inputs, data_samples=None, mode='tensor', audio=None):
            logits = torch.full((inputs.shape[0], T, 1, SIZE, SIZE), -1.0)
            logits[..., SIZE - 2 :, :] = 1.0  # the last two rows: padding of a (SIZE - 2) x SIZE image
            return logits

    assert noise_masked_frames(PaddingOnly(), _batches(img_shape=(SIZE - 2, SIZE))) == (0, 10)
    assert noise_masked_frames(PaddingOnly(), _batches(img_shape=(SIZE, SIZE))) == (10, 10)


def _runner(model, batches):
    messages = []
    logger = SimpleNamespace(
        warning=lambda m: messages.append(('warning', m)), info=lambda m: messages.append(('info', m))
    )
    hub = MessageHub.get_instance(f'noise-gate-{id(model)}')
    return SimpleNamespace(model=model, val_dataloader=batches, message_hub=hub, logger=logger), messages


def test_the_hook_logs_the_share_and_warns_above_the_limit():
    runner, messages = _runner(GateModel(), _batches())
    metrics = dict(mIoU=50.0)
    NoiseGateCheckHook().after_val_epoch(runner, metrics)
    assert metrics == dict(mIoU=50.0)  # a diagnostic in the log, not a metric to select checkpoints by
    assert runner.message_hub.get_scalar('val/noise_masked').current() == 100.0
    assert [kind for kind, _ in messages] == ['warning']
    assert '100.0%' in messages[0][1] and '(10 of 10)' in messages[0][1] and 'robustness.py' in messages[0][1]
    assert 'map_loss_type' not in messages[0][1]  # a head without a presence-map loss has no such option

    runner, messages = _runner(GateModel(map_loss_weight=1.0), _batches())
    NoiseGateCheckHook().after_val_epoch(runner, {})
    assert "map_loss_type='softmax'" in messages[0][1]  # the BCE map's alternative

    runner, messages = _runner(GateModel(level=float('inf')), _batches())
    NoiseGateCheckHook().after_val_epoch(runner, {})
    assert runner.message_hub.get_scalar('val/noise_masked').current() == 0.0 and messages == []

    runner, messages = _runner(GateModel(), _batches())
    NoiseGateCheckHook(warn_above=100.0).after_val_epoch(runner, {})
    assert messages == []


def test_the_hook_skips_a_model_without_a_presence_head_and_says_so_once():
    model = GateModel(presence_head=False)
    runner, messages = _runner(model, _batches())
    hook = NoiseGateCheckHook()
    metrics = {}
    hook.after_val_epoch(runner, metrics)
    hook.after_val_epoch(runner, metrics)
    assert metrics == {} and model.heard == [] and 'val/noise_masked' not in runner.message_hub.log_scalars
    assert len(messages) == 1 and messages[0][0] == 'info' and 'no presence head' in messages[0][1]


def test_the_hook_leaves_the_global_random_states_as_they_were():
    runner, _ = _runner(GateModel(), _batches())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = random.random(), np.random.rand(), torch.rand(1)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)

    class Drawing(list):  # a loader whose iteration draws from every global generator, as DataLoader does
        def __iter__(self):
            random.random(), np.random.rand(), torch.rand(1)
            return super().__iter__()

    runner.val_dataloader = Drawing(runner.val_dataloader)
    NoiseGateCheckHook().after_val_epoch(runner, {})
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='max_clips'):
        NoiseGateCheckHook(max_clips=0)
    with pytest.raises(ValueError, match='warn_above'):
        NoiseGateCheckHook(warn_above=150)


def test_a_failing_check_warns_and_never_stops_training():
    runner, messages = _runner(GateModel(fail=True), _batches())
    NoiseGateCheckHook().after_val_epoch(runner, {})
    assert [kind for kind, _ in messages] == ['warning'] and 'broken model' in messages[0][1]
    assert 'val/noise_masked' not in runner.message_hub.log_scalars


def test_distributed_runs_share_max_clips_and_sum_the_counts(monkeypatch):
    import projects.ccformer.engine.hooks.noise_gate_check_hook as module

    def other_rank_adds(counts):  # the second process saw 2 frames, 1 of them masked
        counts += torch.tensor([1.0, 2.0, 0.0], dtype=counts.dtype)

    monkeypatch.setattr(module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(module, 'all_reduce', other_rank_adds)
    runner, _ = _runner(GateModel(), _batches(repeat=5))
    NoiseGateCheckHook(max_clips=3).after_val_epoch(runner, {})  # this process: ceil(3 / 2) = 2 clips, 5 frames
    assert runner.message_hub.get_scalar('val/noise_masked').current() == pytest.approx(100.0 * 6 / 7)


def test_it_checks_the_validated_weights_between_the_moving_average_swaps():
    from mmengine.hooks import EMAHook, LoggerHook, RuntimeInfoHook
    from mmengine.runner.priority import get_priority

    order = [get_priority(h.priority) for h in (RuntimeInfoHook, NoiseGateCheckHook, EMAHook, LoggerHook)]
    assert order == sorted(order) and len(set(order)) == 4
    hook, ema = NoiseGateCheckHook(), EMAHook.__new__(EMAHook)
    for hooks, warned in (([hook, ema], False), ([ema, hook], True)):  # a user who raised EMAHook's priority
        runner, messages = _runner(GateModel(), [])
        runner.hooks = hooks
        hook.before_train(runner)
        assert bool(messages) == warned
