from . import hooks  # noqa: F401
from .cpu_ddp import CPUDistributedDataParallel  # noqa: F401
from .data_root import set_data_root  # noqa: F401
from .optim_wrapper import BF16OptimWrapper  # noqa: F401
