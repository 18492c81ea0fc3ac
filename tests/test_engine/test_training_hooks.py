"""NonFiniteCheckHook (stop at the first non-finite loss, never save a non-finite model) and IterSeedHook."""

from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import CheckpointHook
from mmseg.structures import SegDataSample

import projects.ccformer  # noqa: F401
from projects.ccformer.engine.hooks import IterSeedHook, NonFiniteCheckHook
from projects.ccformer.engine.hooks.iter_seed_hook import MODEL_STREAM


def _runner(model=None, seed=123, it=6, epoch=2):
    return SimpleNamespace(model=model or torch.nn.Linear(2, 2), seed=seed, iter=it, epoch=epoch)


def _batch(*videos):
    samples = []
    for v in videos:
        s = SegDataSample()
        s.set_metainfo(dict(video_id=v, audio_path=f'/data/{v}.pkl'))
        samples.append(s)
    return dict(inputs=[], data_samples=samples)


def test_non_finite_loss_names_the_batch():
    hook = NonFiniteCheckHook()
    runner = _runner()
    hook.after_train_iter(runner, 0, _batch('a'), dict(loss=torch.tensor(0.5), loss_bcl=torch.tensor(0.1)))
    with pytest.raises(FloatingPointError) as exc:
        hook.after_train_iter(
            runner,
            0,
            _batch('vid_1', 'vid_2'),
            dict(loss=torch.tensor(float('nan')), loss_bcl=torch.tensor(float('inf')), decode_loss=torch.tensor(1.0)),
        )
    msg = str(exc.value)
    assert 'iteration 7 (epoch 3)' in msg and 'loss=nan' in msg and 'loss_bcl=inf' in msg and 'decode_loss' not in msg
    assert 'vid_1 (/data/vid_1.pkl)' in msg and 'vid_2' in msg


def test_non_finite_model_is_never_saved():
    """Runs before CheckpointHook; a model with a NaN weight stops the epoch end and any save."""
    assert NonFiniteCheckHook.priority == 'ABOVE_NORMAL' and CheckpointHook.priority == 'VERY_LOW'
    hook = NonFiniteCheckHook()
    model = torch.nn.Linear(2, 2)
    hook.after_train_epoch(_runner(model))
    hook.before_save_checkpoint(_runner(model), dict(state_dict=model.state_dict()))
    with torch.no_grad():
        model.weight[0, 0] = float('nan')
    with pytest.raises(FloatingPointError, match=r'non-finite weights after iteration 6 \(e.g. weight\); it is not '):
        hook.after_train_epoch(_runner(model))
    with pytest.raises(FloatingPointError, match='not saved'):
        hook.before_save_checkpoint(_runner(torch.nn.Linear(2, 2)), dict(state_dict=model.state_dict()))


def test_iter_seed_hook_draws_depend_on_seed_and_iteration_only():
    hook = IterSeedHook()
    draws = {}
    for it in (3, 4, 3):
        torch.manual_seed(it * 1000 + 17)  # whatever ran before (validation, a fresh process after resume)
        hook.before_train_iter(_runner(it=it), 0)
        draws.setdefault(it, []).append(torch.rand(3))
    assert torch.equal(draws[3][0], draws[3][1])
    assert not torch.equal(draws[3][0], draws[4][0])
    hook.before_train_iter(_runner(seed=124, it=3), 0)
    assert not torch.equal(torch.rand(3), draws[3][0])
    assert MODEL_STREAM > 2**32  # never equal to an epoch number of the samplers' streams


def test_strict_checkpoint_hook_checks_before_mmengine_loads():
    """tools/test.py's hook raises on a checkpoint that does not fit (mmengine loads with strict=False); with
    allow_partial it lets the load go on; a model under test-time augmentation is checked as its inner module."""
    from mmengine.model import BaseTTAModel

    from projects.ccformer.engine.hooks import StrictCheckpointHook
    from projects.ccformer.engine.safe_checkpoint import CheckpointMismatchError

    class TTA(BaseTTAModel):
        def merge_preds(self, data_samples_list):
            return data_samples_list[0]

    class Net(torch.nn.Linear):
        def test_step(self, data):
            return data

    model = Net(2, 2)
    good = dict(state_dict={f'module.{k}': v for k, v in model.state_dict().items()})
    bad = dict(state_dict={'fc.weight': torch.zeros(2, 2)})
    hook = StrictCheckpointHook(checkpoint='x.pth', config='cfg.py')
    for runner_model in (model, TTA(module=model)):
        hook.after_load_checkpoint(_runner(runner_model), good)
        with pytest.raises(CheckpointMismatchError, match='x.pth does not fit the model built from cfg.py'):
            hook.after_load_checkpoint(_runner(runner_model), bad)
    StrictCheckpointHook('x.pth', allow_partial=True).after_load_checkpoint(_runner(model), bad)
