"""Reduced precision computes what fp32 computes, within its rounding (CPU, tiny model, random weights).

bf16 keeps 8 mantissa bits (~4e-3 per operation, accumulated over tens of layers), so the final logits, the EIM's
outputs, the loss and the gradients are compared by relative error against the fp32 eager model: under
``torch.autocast`` (what ``--amp`` / ``BF16OptimWrapper`` train with) and with the weights cast to bf16
(``init_avs_model(dtype='bfloat16')``). The same checks with mmcv's CUDA kernel and fp16 are in
``test_ccformer_cuda.py``.
"""

import pytest
import torch
from test_ccformer import build, samples, toy_clips

#: relative error of the logits / EIM outputs and of the concatenated gradients against fp32
TOL_BF16, TOL_GRAD_BF16 = 5e-2, 2e-1


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double(), ref.detach().double()
    assert torch.isfinite(out).all() and torch.isfinite(ref).all()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def forward(model, frames, audio):
    """Final logits and the EIM's outputs (captured by a hook) of a tensor-mode forward."""
    captured = []

    def hook(module, args, out):
        captured.extend(t.detach().float() for t in (*out.feats, *out.feats_orig, out.audio, out.audio_orig))

    handle = model.neck.register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = model(frames, None, mode='tensor', audio=audio).float()
    finally:
        handle.remove()
    return logits, captured


def loss_and_grads(model, frames, audio, data_samples):
    model.zero_grad(set_to_none=True)
    loss, _ = model.parse_losses(model(frames, data_samples, mode='loss', audio=audio))
    loss.backward()
    grads = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    return float(loss), grads


@pytest.fixture(scope='module')
def model_and_data():
    model = build().eval()  # dropout off: the compared runs compute one function
    frames, audio, gts = toy_clips(n=2, t=3)
    return model, frames, audio, samples(gts)


def test_bf16_autocast_forward_matches_fp32(model_and_data):
    model, frames, audio, _ = model_and_data
    ref, ref_neck = forward(model, frames, audio)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, neck = forward(model, frames, audio)
    err = relative_error(out, ref)
    assert 0 < err < TOL_BF16  # bf16 really ran (an exact match would mean autocast never reached the model)
    assert len(neck) == len(ref_neck) >= 10
    assert 0 < max(relative_error(a, b) for a, b in zip(neck, ref_neck)) < TOL_BF16
    assert ((out > 0) == (ref > 0)).float().mean() > 0.95


def test_bf16_autocast_training_step_matches_fp32(model_and_data):
    model, frames, audio, data_samples = model_and_data
    ref_loss, ref_grads = loss_and_grads(model, frames, audio, data_samples)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss, grads = loss_and_grads(model, frames, audio, data_samples)
    assert abs(loss - ref_loss) / abs(ref_loss) < TOL_BF16
    assert 0 < relative_error(grads, ref_grads) < TOL_GRAD_BF16
    model.zero_grad(set_to_none=True)


def test_bf16_weights_match_fp32(model_and_data):
    """The model cast to bf16 (no per-operation casts) takes float32 inputs and stays within bf16 rounding."""
    model, frames, audio, _ = model_and_data
    ref, _ = forward(model, frames, audio)
    cast = build().eval().to(torch.bfloat16)
    out, _ = forward(cast, frames, audio)
    assert 0 < relative_error(out, ref) < TOL_BF16
