"""DistributedDataParallel on CPU (gloo) through mmengine's Runner."""
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
