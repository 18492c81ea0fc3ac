"""The whole CCFormer forward is one graph for torch.compile (no graph breaks), in inference and in training.

Graph breaks split a compiled forward into pieces that run eagerly in between (and CUDA graphs then cover only
the pieces), so this guards the compiled / CUDA-graph speed. On the CPU the deformable attention runs
mmcv's PyTorch path (on CUDA the ``ccformer::ms_deform_attn`` custom op); both trace without breaks.
"""

import copy
import pickle

import pytest
import torch
from test_ccformer import build, samples, toy_clips


def _explain(fn, *args):
    torch._dynamo.reset()
    try:
        return torch._dynamo.explain(fn)(*args)
    finally:
        torch._dynamo.reset()


def _reasons(ex) -> list:
    return [b.reason.splitlines()[0] for b in ex.break_reasons]


def test_tensor_and_loss_modes_trace_as_one_graph():
    model = build()
    frames, audio, gts = toy_clips(n=2, t=3)
    data_samples = samples(gts)

    model.eval()
    with torch.no_grad():
        model(frames, None, mode='tensor', audio=audio)  # caches the shape constants, as a warm-up run does
        ex = _explain(lambda x, a: model(x, None, mode='tensor', audio=a), frames, audio)
    assert ex.graph_break_count == 0, _reasons(ex)
    assert ex.graph_count == 1

    model.train()
    ex = _explain(lambda x, a: model(x, data_samples, mode='loss', audio=a), frames, audio)
    assert ex.graph_break_count == 0, _reasons(ex)
    assert ex.graph_count == 1
    assert ex.op_count > 100  # the losses were traced, not skipped


class _CountingBackend:
    """A torch.compile backend that runs the traced graph as is and counts the graphs it was given."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


def test_compile_cfg_matches_eager_without_recompiles():
    """compile_cfg compiles the tensor core only: same logits, losses and gradients as eager, one graph per
    mode, and no recompile when the clips' metainfo (ids, flips, paths) changes from batch to batch."""
    backend = _CountingBackend()
    eager, compiled = build(), build(compile_cfg=dict(backend=backend))
    compiled.load_state_dict(eager.state_dict())
    frames, audio, gts = toy_clips(n=2, t=3)
    torch._dynamo.reset()
    try:
        eager.eval(), compiled.eval()
        with torch.no_grad():
            ref = eager(frames, None, mode='tensor', audio=audio)
            for _ in range(3):  # first call eager, then compiled
                out = compiled(frames, None, mode='tensor', audio=audio)
                assert torch.allclose(out, ref, rtol=1e-5, atol=1e-6)
        assert backend.graphs == 1

        eager.train(), compiled.train()
        for step in range(3):
            batch = samples(gts, video_id=f'clip{step}', flip=bool(step % 2), img_path=f'/data/{step}.png')
            grads = []
            for model in (eager, compiled):
                model.zero_grad()
                loss, _ = model.parse_losses(model(frames, batch, mode='loss', audio=audio))
                loss.backward()
                grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
                if model is eager:
                    ref_loss = loss.detach()
            assert torch.allclose(loss.detach(), ref_loss, rtol=1e-5)
            assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 50
            for name, g in grads[0].items():
                assert torch.allclose(grads[1][name], g, rtol=1e-4, atol=1e-6), name
        assert backend.graphs == 2  # + the training graph, traced once
        # a module that has run compiled still deep-copies and pickles (nothing compiled is stored on it)
        clone = copy.deepcopy(compiled)
        assert clone.compile_cfg.keys() == compiled.compile_cfg.keys()
        pickle.loads(pickle.dumps(compiled.state_dict()))
        pickle.dumps(compiled)
    finally:
        torch._dynamo.reset()


def test_compile_cfg_values():
    """Static shapes unless asked otherwise (train and val batch sizes get their own graphs); CUDA-graph modes are
    recognised (their outputs are cloned, gradient accumulation is refused by tools/train.py)."""
    from projects.ccformer.models.segmentors.ccformer import CCFormer

    assert build(compile_cfg=True).compile_cfg == dict(dynamic=False)
    assert build(compile_cfg=dict(dynamic=True)).compile_cfg == dict(dynamic=True)
    assert build(compile_cfg=False).compile_cfg is None
    with pytest.raises(TypeError, match='compile_cfg'):
        build(compile_cfg='reduce-overhead')
    assert CCFormer.uses_cuda_graphs(dict(mode='reduce-overhead'))
    assert CCFormer.uses_cuda_graphs(dict(backend='cudagraphs'))
    assert not CCFormer.uses_cuda_graphs(dict(mode='max-autotune-no-cudagraphs'))
    assert not CCFormer.uses_cuda_graphs(None)


def test_inputs_and_audio_cast_to_the_weights_dtype():
    """A bf16 model takes float32 frames and audio, and bf16 frames with float32 audio (each is cast)."""
    model = build().eval().to(torch.bfloat16)
    frames, audio, _ = toy_clips(n=1, t=3)
    with torch.no_grad():
        a = model(frames, None, mode='tensor', audio=audio)
        b = model(frames.bfloat16(), None, mode='tensor', audio=audio)
    assert a.dtype == b.dtype == torch.bfloat16
    assert torch.equal(a, b)
