"""The whole CCFormer forward is one graph for torch.compile (no graph breaks), in inference and in training.

Graph breaks split a compiled forward into pieces that run eagerly in between (and CUDA graphs then cover only
the pieces), so this guards the compiled / CUDA-graph speed of issue 5. On the CPU the deformable attention runs
mmcv's PyTorch path (on CUDA the ``ccformer::ms_deform_attn`` custom op); both trace without breaks.
"""
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
