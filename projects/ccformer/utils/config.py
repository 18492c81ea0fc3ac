"""Config helpers shared by the inference API and the tools."""

from typing import Any, Iterator, Tuple

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


def _transforms(node: Any) -> Iterator[dict]:
    """Every transform-like dict (one with a ``type``) in a nested config, wrapped ones included."""
    if isinstance(node, dict):
        if 'type' in node:
            yield node
        for value in node.values():
            yield from _transforms(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from _transforms(item)


def _of_type(node: Any, name: str) -> Iterator[dict]:
    return (t for t in _transforms(node) if str(t['type']).split('.')[-1] == name)


def _pair(value: Any) -> Tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, (int, float)) else (int(value[0]), int(value[1]))


def _load(cfg: Any):
    if isinstance(cfg, str):
        from mmengine.config import Config

        return Config.fromfile(cfg)
    return cfg


def config_input_size(cfg: Any) -> Tuple[int, int]:
    """``(h, w)`` of the frames the model of a config runs at.

    Read from, in order: ``input_size`` of ``LoadAVSFrames`` in the test pipeline (the size a video given as
    ``img_path`` is resized to), the size of ``AVSSResize`` in the test pipeline, the ``crop_size`` of
    ``RandomCrop`` in the train pipeline.

    Args:
        cfg: a :class:`~mmengine.config.Config` (or dict) or the path of a config file.

    Raises:
        ValueError: naming the config when none of them is there (a tool's ``--shape`` then gives the size).
    """
    cfg = _load(cfg)
    test = [cfg.get('test_pipeline'), cfg.get('test_dataloader')]
    for t in _of_type(test, 'LoadAVSFrames'):
        if t.get('input_size') is not None:
            return _pair(t['input_size'])
    for t in _of_type(test, 'AVSSResize'):
        return _pair(t.get('size', 224))
    for t in _of_type(cfg.get('train_dataloader'), 'RandomCrop'):
        return _pair(t['crop_size'])
    name = getattr(cfg, 'filename', None) or 'the config'
    raise ValueError(
        f'{name}: cannot tell the frame size the model runs at (no LoadAVSFrames input_size or AVSSResize in the '
        f'test pipeline, no RandomCrop in the train pipeline); give it explicitly (--shape H W)'
    )


def config_num_frames(cfg: Any) -> int:
    """Frames per clip T of a config: ``num_frames`` of ``LoadAVSFrames`` in the test pipeline, else the
    ``NUM_FRAMES`` of the test dataset class (5 for S4 / MS3, 10 for AVSS).

    Raises:
        ValueError: naming the config when neither is there.
    """
    cfg = _load(cfg)
    for t in _of_type([cfg.get('test_pipeline'), cfg.get('test_dataloader')], 'LoadAVSFrames'):
        if t.get('num_frames'):
            return int(t['num_frames'])
    from mmseg.registry import DATASETS

    for t in _transforms(cfg.get('test_dataloader', {}).get('dataset')):
        cls = DATASETS.get(str(t['type']))
        if getattr(cls, 'NUM_FRAMES', None):
            return int(cls.NUM_FRAMES)
    name = getattr(cfg, 'filename', None) or 'the config'
    raise ValueError(f'{name}: cannot tell the frames per clip T (no LoadAVSFrames num_frames in the test pipeline)')
