from . import hooks  # noqa: F401
from .audio_swap import AudioSwapDataset, derangement  # noqa: F401
from .cpu_ddp import CPUDistributedDataParallel  # noqa: F401
