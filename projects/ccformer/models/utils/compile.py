"""``torch.compile`` of a model's tensor-only core (``CCFormer(compile_cfg=...)``).

:class:`CompiledCore` runs a function ``core(model, *tensors)`` eagerly the first time per input signature (so
shape constants the model caches are built outside the graph) and through ``torch.compile`` afterwards. The
compiled functions are shared per set of compile arguments (:func:`compiled`): compiling the unbound function keeps
no reference to a model and leaves the module picklable and deep-copyable.
"""

import logging
from typing import Callable, Dict, Hashable, Optional, Union

import torch
from mmengine.logging import print_log

_COMPILED: Dict[Hashable, Callable] = {}


def compile_kwargs(compile_cfg: Union[bool, dict, None]) -> Optional[dict]:
    """``torch.compile`` keyword arguments of ``compile_cfg`` (None / False: eager; True: defaults), with
    ``dynamic=False`` unless given: train (N=2) and val (N=4, a partial last batch) get their own specialised
    graphs instead of dynamo's automatic switch to one dynamic-shape graph (slower kernels, CUDA graphs re-recorded
    per size)."""
    if compile_cfg is None or compile_cfg is False:
        return None
    if compile_cfg is True:
        compile_cfg = {}
    if not isinstance(compile_cfg, dict):
        raise TypeError(
            f'CCFormer: compile_cfg must be None, a bool or a dict of torch.compile arguments, '
            f'got {type(compile_cfg).__name__}'
        )
    kwargs = dict(compile_cfg)
    kwargs.setdefault('dynamic', False)
    return kwargs


def uses_cuda_graphs(compile_cfg: Optional[dict]) -> bool:
    """Whether ``compile_cfg`` records CUDA graphs (inductor's reduce-overhead / max-autotune modes or the
    cudagraphs backend): their outputs live in a memory pool that the next replay overwrites."""
    return bool(compile_cfg) and (
        compile_cfg.get('mode') in ('reduce-overhead', 'max-autotune') or compile_cfg.get('backend') == 'cudagraphs'
    )


def compiled(fn: Callable, kwargs: dict) -> Callable:
    """``torch.compile(fn, **kwargs)``, one per function and set of arguments.

    Models of the same structure share the compiled graphs (their parameters are graph inputs), and also dynamo's
    recompile limit (``torch._dynamo.config.recompile_limit``, 8 input signatures).
    """
    key = (fn, repr(sorted(kwargs.items(), key=lambda kv: kv[0])))
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(fn, **kwargs)
    return _COMPILED[key]


class CompiledCore:
    """``core(model, *args)`` run eagerly or compiled, as ``compile_cfg`` says.

    Args:
        core (Callable): unbound function of the model's tensor core.
        compile_cfg (bool | dict | None): see :func:`compile_kwargs`.
    """

    def __init__(self, core: Callable, compile_cfg: Union[bool, dict, None] = None) -> None:
        self.core = core
        self.kwargs = compile_kwargs(compile_cfg)
        self.signatures: set = set()

    @property
    def uses_cuda_graphs(self) -> bool:
        return uses_cuda_graphs(self.kwargs)

    def __call__(self, model: torch.nn.Module, *args, signature: Hashable):
        """``core(model, *args)``; ``signature`` identifies the input shapes / modes (the first call per
        signature runs eagerly: it caches the model's shape constants outside the graph)."""
        if self.kwargs is None:
            return self.core(model, *args)
        if signature not in self.signatures:
            self.signatures.add(signature)
            print_log(
                f'CCFormer: compile_cfg={self.kwargs}: input signature {signature} runs eagerly once, then '
                'compiles on its next call (seconds to minutes)',
                logger='current',
                level=logging.INFO,
            )
            return self.core(model, *args)
        fn = compiled(self.core, self.kwargs)
        if self.uses_cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: the last replay's outputs are done
        return fn(model, *args)
