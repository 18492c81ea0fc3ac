"""BF16OptimWrapper (projects/ccformer/engine/optim_wrapper.py) on CPU: bf16 autocast, plain OptimWrapper updates
(no GradScaler, no host reads), clipping, and state dicts compatible with AmpOptimWrapper / OptimWrapper."""

import copy

import pytest
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import DefaultScope
from mmseg.registry import OPTIM_WRAPPERS

from projects.ccformer.engine import BF16OptimWrapper


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.norm(self.fc(x)))


def _model(seed=0):
    torch.manual_seed(seed)
    return Tiny()


def _cfg(**kw):
    return dict(type='BF16OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.01), **kw)


def _build(model, **kw):
    with DefaultScope.overwrite_default_scope('mmseg'):  # as the Runner (default_scope='mmseg')
        return build_optim_wrapper(model, _cfg(**kw))


def _loss(model, x):
    return model(x).float().pow(2).mean()


def _step(wrapper, model, x):
    with wrapper.optim_context(model):
        loss = _loss(model, x)
    wrapper.update_params(loss)
    return loss


def test_registered_and_built_from_config():
    assert OPTIM_WRAPPERS.get('BF16OptimWrapper') is BF16OptimWrapper
    model = _model()
    wrapper = _build(model)
    assert type(wrapper) is BF16OptimWrapper
    assert isinstance(wrapper.optimizer, torch.optim.AdamW)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    built = OPTIM_WRAPPERS.build(dict(type='BF16OptimWrapper', dtype='bfloat16', optimizer=sgd))
    assert built.cast_dtype is torch.bfloat16
    assert not hasattr(wrapper, 'loss_scaler')


def test_autocast_inside_context_only():
    model = _model()
    wrapper = _build(model)
    x = torch.randn(3, 8)
    with wrapper.optim_context(model):
        assert model.fc(x).dtype == torch.bfloat16
    assert model.fc(x).dtype == torch.float32


def test_one_step_equals_manual_autocast_adamw():
    model = _model()
    ref = copy.deepcopy(model)
    wrapper = _build(model)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.01)
    x = torch.randn(5, 8)
    before = [p.detach().clone() for p in model.parameters()]
    _step(wrapper, model, x)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        loss = _loss(ref, x)
    loss.backward()
    ref_opt.step()
    for (name, p), q, b in zip(model.named_parameters(), ref.parameters(), before):
        assert torch.equal(p, q), name
        assert not torch.equal(p, b), name
        assert p.grad is None  # update_params zeroed the gradients


def test_no_host_read_in_backward_and_step(monkeypatch):
    """No .item() on the loss, the gradients or an inf check: only AdamW's own step counters (host tensors, as on
    GPU without capturable=True) are read. A GradScaler step trips the same guard (its inf check)."""
    model = _model()
    wrapper = _build(model)
    opt = wrapper.optimizer
    original = torch.Tensor.item

    def guarded_item(t):
        if any(st.get('step') is t for st in opt.state.values()):
            return original(t)
        raise AssertionError('host read (.item()) in backward/step')

    x = torch.randn(4, 8)
    before = [p.detach().clone() for p in model.parameters()]
    monkeypatch.setattr(torch.Tensor, 'item', guarded_item)
    for _ in range(2):
        _step(wrapper, model, x)
    assert wrapper.inner_count == 2
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))

    scaler = torch.amp.GradScaler('cpu')  # control: what AmpOptimWrapper does per step
    with wrapper.optim_context(model):
        loss = _loss(model, x)
    scaler.scale(loss).backward()
    with pytest.raises(AssertionError, match='host read'):
        scaler.step(opt)


def test_clip_grad_norm():
    model = _model()
    ref = copy.deepcopy(model)
    wrapper = _build(model, clip_grad=dict(max_norm=1e-3))
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.01)
    x = torch.randn(5, 8) * 10
    _step(wrapper, model, x)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        loss = _loss(ref, x)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm=1e-3)
    assert norm > 1e-3  # clipping really happened
    ref_opt.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.equal(p, q)
    assert wrapper.message_hub.get_scalar('train/grad_norm').current() == pytest.approx(float(norm))


def test_state_dict_round_trip_and_plain_optim_wrapper():
    model = _model()
    wrapper = _build(model)
    _step(wrapper, model, torch.randn(4, 8))
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    fresh = _build(model)
    fresh.load_state_dict(copy.deepcopy(state))
    assert int(fresh.optimizer.state_dict()['state'][0]['step']) == 1
    plain = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-2))
    plain.load_state_dict(copy.deepcopy(state))
    assert torch.equal(plain.optimizer.state_dict()['state'][0]['exp_avg'], state['state'][0]['exp_avg'])


def test_loads_amp_optim_wrapper_state_dict():
    """A checkpoint of AmpOptimWrapper(dtype=bfloat16) carries ``loss_scaler``: it is dropped on load."""
    model = _model()
    src = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-2))
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        loss = _loss(model, torch.randn(4, 8))
    src.update_params(loss)
    amp_state = src.state_dict()
    amp_state['loss_scaler'] = {
        'scale': 65536.0,
        'growth_factor': 2.0,
        'backoff_factor': 0.5,
        'growth_interval': 2000,
        '_growth_tracker': 1,
    }
    wrapper = _build(model)
    given = copy.deepcopy(amp_state)
    wrapper.load_state_dict(given)
    assert 'loss_scaler' in given  # the caller's dict is left alone
    assert not hasattr(wrapper, 'loss_scaler')
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    assert torch.equal(state['state'][0]['exp_avg'], amp_state['state'][0]['exp_avg'])
    plain = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-2))
    plain.load_state_dict(state)
    assert int(plain.optimizer.state_dict()['state'][0]['step']) == 1


@pytest.mark.parametrize('dtype', ['float16', torch.float16])
def test_float16_rejected(dtype):
    with pytest.raises(ValueError, match='fp16 needs loss scaling.*AmpOptimWrapper'):
        _build(_model(), dtype=dtype)


def test_other_dtype_and_loss_scale_rejected():
    with pytest.raises(ValueError, match='only autocasts to bfloat16'):
        _build(_model(), dtype='float32')
    with pytest.raises(ValueError, match='needs no loss scal.*remove `optim_wrapper.loss_scale`'):
        _build(_model(), loss_scale='dynamic')
    for dtype in (None, 'bfloat16', torch.bfloat16):
        assert _build(_model(), dtype=dtype).cast_dtype is torch.bfloat16


def test_ddp_like_wrapper_unwrapped():
    """The autocast device comes from ``model.module`` for wrappers such as DistributedDataParallel."""

    class Wrapped(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    class ParamlessWrapper(nn.Module):  # the device must come from .module, not from the wrapper
        def __init__(self, module):
            super().__init__()
            self.__dict__['module'] = module  # not registered: the wrapper itself has no parameters

    on_meta = _model().to('meta')
    assert BF16OptimWrapper._device_type(ParamlessWrapper(on_meta)) == 'meta'
    assert BF16OptimWrapper._device_type(Wrapped(on_meta)) == 'meta'
    model = Wrapped(_model())
    assert BF16OptimWrapper._device_type(model) == 'cpu'
    wrapper = _build(model)
    with wrapper.optim_context(model):
        assert model.module.fc(torch.randn(2, 8)).dtype == torch.bfloat16
    assert BF16OptimWrapper._device_type(nn.ReLU()) == 'cpu'
