"""Parameters and FLOPs of a CCFormer config for one clip: T frames of H x W and their audio.

Usage::

    python tools/analysis_tools/get_flops.py configs/ccformer_pvt_s4.py [--shape H W] [--frames T]
        [--json out.json] [--cfg-options k=v ...]

The clip's size and length come from the config (``projects.ccformer.utils.config_input_size`` /
``config_num_frames``: 224 x 224 and 5 frames for the S4 / MS3 configs, 10 for AVSS, 64 x 64 for the tiny ones)
unless ``--shape`` / ``--frames`` give them.

Counting: mmengine.analysis ``FlopAnalyzer`` (fvcore's jit-trace counter), which counts **one fused multiply-add as
one FLOP** (as papers, and the CCFormer paper's table, do). Handles added here: ``aten::scaled_dot_product_attention``
(QK^T and AV: B*h*Lq*Lk*(E + Ev)) and ``aten::baddbmm`` (the QK^T of ``nn.MultiheadAttention`` with an attention
mask, counted as ``bmm``; the added mask is element-wise). Deformable attention is traced through mmcv's PyTorch
path on CPU, so its bilinear ``grid_sample`` is counted (4 per sampled output value) together with its linear layers;
the weighted sum of the sampled values (1 per value) and other element-wise ops (activations, additions, softmax) are
not counted, as in fvcore. The frozen VGGish is included in the FLOPs and listed separately; "trainable" parameters
exclude it, as the paper's table does.
"""

import argparse
import json
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import bmm_flop_jit, get_shape
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.registry import init_default_scope

from projects.ccformer.utils import config_input_size, config_num_frames, strip_pretrained
from projects.ccformer.utils.benchmark import TensorForward


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs (MACs) of F.scaled_dot_product_attention: QK^T + attn @ V."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for s in q[:-2]:
        batch *= s
    lq, e = q[-2], q[-1]
    lk, ev = k[-2], v[-1]
    return batch * lq * lk * (e + ev)


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs (MACs) of ``baddbmm(input, batch1, batch2)``: the batched matmul ``batch1 @ batch2``, as ``bmm``."""
    return bmm_flop_jit(inputs[1:3], outputs)


def flop_analyzer(model: nn.Module, inputs: tuple) -> FlopAnalyzer:
    """mmengine ``FlopAnalyzer`` of ``model(*inputs)`` with this tool's handles and its warnings off."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.set_op_handle('aten::baddbmm', baddbmm_flop_jit)
    return analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')


def count_params(model: nn.Module) -> Dict[str, int]:
    out = OrderedDict(
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.parameters()),
    )
    for name, child in model.named_children():
        if name == 'data_preprocessor':
            continue
        out[f'trainable.{name}'] = sum(p.numel() for p in child.parameters() if p.requires_grad)
    return out


def analyse(config: str, shape=None, frames: int = None, cfg_options: dict = None) -> Dict[str, Any]:
    """Build the model of ``config`` (no pretrained weights) and count parameters and FLOPs of one clip of
    ``frames`` frames of ``shape`` ``(h, w)`` (None: the config's, :func:`config_input_size` /
    :func:`config_num_frames`).
    """
    from mmseg.registry import MODELS

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    shape = tuple(shape) if shape else config_input_size(cfg)
    frames = frames or config_num_frames(cfg)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    strip_pretrained(model_cfg)
    model = MODELS.build(ConfigDict(model_cfg)).eval()
    frames_t = torch.randn(1, frames, 3, *shape)
    audio = torch.randn(1, frames, 1, 96, 64)
    analyzer = flop_analyzer(TensorForward(model), (frames_t, audio))
    with torch.no_grad():
        total = analyzer.total()
        by_module = analyzer.by_module()
    flops = OrderedDict(total=total)
    for name, _ in model.named_children():
        if name != 'data_preprocessor':
            flops[name] = by_module.get(f'model.{name}', 0)
    unsupported = dict(analyzer.unsupported_ops())
    return dict(
        config=config,
        frames=frames,
        shape=list(shape),
        params=count_params(model),
        flops=flops,
        uncounted_ops=unsupported,
        counting='mmengine FlopAnalyzer (fvcore-style): 1 FLOP = 1 fused multiply-add; element-wise ops not counted',
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Trainable parameters and FLOPs of a CCFormer config')
    parser.add_argument('config')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=None, metavar=('H', 'W'), help='frame size (default: the config\'s)'
    )
    parser.add_argument(
        '--frames', type=int, default=None, help='frames per clip (default: the config\'s, 5 for S4 / MS3, 10 for AVSS)'
    )
    parser.add_argument('--json', help='also write the numbers to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        raise SystemExit(f'get_flops: config {args.config!r} not found')
    try:
        res = analyse(args.config, args.shape, args.frames, args.cfg_options)
    except ValueError as err:
        raise SystemExit(f'get_flops: {err}') from err
    p, f = res['params'], res['flops']
    frames, (h, w) = res['frames'], res['shape']
    print(f'config: {args.config}')
    print(f'input: 1 clip x {frames} frames x 3 x {h} x {w} (+ {frames} log-mel examples 1 x 96 x 64)')
    print(f'counting: {res["counting"]}')
    print(f'trainable params: {p["trainable"] / 1e6:.2f} M   (total incl. frozen: {p["total"] / 1e6:.2f} M)')
    for k, v in p.items():
        if k.startswith('trainable.'):
            print(f'  {k[len("trainable.") :]:<16} {v / 1e6:8.2f} M trainable')
    print(f'FLOPs: {f["total"] / 1e9:.2f} G per clip ({f["total"] / 1e9 / frames:.2f} G per frame)')
    for k, v in f.items():
        if k != 'total':
            print(f'  {k:<16} {v / 1e9:8.2f} G')
    if res['uncounted_ops']:
        print('not counted (op: calls): ' + ', '.join(f'{k}: {v}' for k, v in sorted(res['uncounted_ops'].items())))
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(res, fh, indent=2)


if __name__ == '__main__':
    main()
