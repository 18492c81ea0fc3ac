"""DistributedDataParallel on CPU (gloo) through mmengine's Runner."""

import logging

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel

# mmengine's root registry: Runner.wrap_model looks the wrapper type up there (``MODEL_WRAPPERS.get``) without
# switching to the mmseg scope
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for CPU modules.

    mmengine's ``Runner.wrap_model`` always passes ``device_ids=[LOCAL_RANK]``, which ``DistributedDataParallel``
    rejects for a CPU module; this wrapper drops it (CPU DDP must not name a device). ``tools/train.py`` and
    ``tools/test.py`` select it with the gloo backend when ``--launcher pytorch`` runs without CUDA.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def init_cpu_distributed(cfg: Config) -> None:
    """Start the process group for ``--launcher pytorch`` on a machine without CUDA.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally, which fails without a GPU; here the
    group is created first (``env://`` from torchrun) with the ``gloo`` backend (``nccl`` needs CUDA), and the
    Runner then reuses it; the model is wrapped in ``CPUDistributedDataParallel`` (no ``device_ids``). No-op with
    CUDA or another launcher.
    """
    import torch
    import torch.distributed as dist

    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available() or dist.is_initialized():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    if backend != 'gloo':
        print_log(
            f'no CUDA device: using the gloo backend instead of {backend} for CPU DDP',
            logger='current',
            level=logging.WARNING,
        )
    dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        # mmengine passes device_ids=[LOCAL_RANK] to DDP, which a CPU module rejects
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
        )
