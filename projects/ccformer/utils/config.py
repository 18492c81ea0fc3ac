"""Config helpers shared by the inference API and the tools."""

from typing import Any

PRETRAINED_KEYS = ('pretrained', 'checkpoint_path')


def _is_pretrained(init: Any) -> bool:
    return isinstance(init, dict) and init.get('type') == 'Pretrained'


def strip_pretrained(node: Any, keep_frozen: bool = False) -> int:
    """Switch off every pretrained-weight reference in a (nested) model config, in place.

    ``init_cfg`` entries of type ``Pretrained`` are removed (a list keeps its other entries; ``None`` when none is
    left), ``pretrained`` / ``checkpoint_path`` strings become ``None`` and ``pretrained=True`` (timm) becomes
    ``False``. So a model builds and initialises without any weight file.

    Args:
        node: a config dict (``Config`` / ``ConfigDict`` / dict), list or tuple; other values are left alone.
        keep_frozen (bool): keep the references of modules configured with ``frozen=True`` (the frozen VGGish,
            which a checkpoint may leave out and which then loads its own file).

    Returns:
        int: the number of entries changed.
    """
    changed = 0
    if isinstance(node, dict):
        frozen = keep_frozen and bool(node.get('frozen', False))
        for key in list(node.keys()):
            value = node[key]
            if frozen and (key == 'init_cfg' or key in PRETRAINED_KEYS):
                continue
            if key == 'init_cfg' and any(
                _is_pretrained(v) for v in (value if isinstance(value, (list, tuple)) else [value])
            ):
                kept = [v for v in value if not _is_pretrained(v)] if isinstance(value, (list, tuple)) else []
                node[key] = kept or None
                changed += 1
            elif key in PRETRAINED_KEYS and isinstance(value, (str, bool)) and value:
                node[key] = False if isinstance(value, bool) else None
                changed += 1
            else:
                changed += strip_pretrained(value, keep_frozen)
    elif isinstance(node, (list, tuple)):
        for item in node:
            changed += strip_pretrained(item, keep_frozen)
    return changed
