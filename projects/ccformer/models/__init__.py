from . import backbones, decode_heads, losses, necks, segmentors  # noqa: F401
from .data_preprocessor import AVSDataPreprocessor  # noqa: F401
