from . import hooks  # noqa: F401
from .cpu_ddp import CPUDistributedDataParallel  # noqa: F401
from .data_root import set_data_root  # noqa: F401
from .optim_wrapper import BF16OptimWrapper  # noqa: F401
from .safe_checkpoint import install_safe_loaders, load_checkpoint_file, trust_checkpoint  # noqa: F401

# every checkpoint read through mmengine from here on is weights-only (engine/safe_checkpoint.py)
install_safe_loaders()
