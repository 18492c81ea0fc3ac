"""Config helpers shared by the inference API and the tools."""

import os.path as osp
from typing import Any, List, Optional, Sequence, Tuple

PRETRAINED_KEYS = ('pretrained', 'checkpoint_path')


def saved_config_path(work_dir: str, config: str) -> str:
    """Where ``tools/train.py --work-dir work_dir`` saves ``config`` as it trained it (mmengine's
    ``Runner.dump_config``: the config's file name in the work dir, with the ``--cfg-options`` merged in)."""
    return osp.join(work_dir, osp.basename(config))


def check_input_files(config: str, checkpoint: str, allow_urls: bool = True, hint: str = '') -> None:
    """Fail early, naming the file, when a tool's config or checkpoint is not there.

    Args:
        config (str): the config file.
        checkpoint (str): the checkpoint file.
        allow_urls (bool): a path with ``://`` is left to mmengine, which fetches it. Defaults to True.
        hint (str): appended to the message, e.g. where training writes its checkpoints.

    Raises:
        FileNotFoundError: ``Config file '...' does not exist; check the path`` (or ``Checkpoint file``).
    """
    from mmengine.utils import check_file_exist

    hint = hint.replace('{', '{{').replace('}', '}}')  # check_file_exist formats the message
    for path, what in ((config, 'Config'), (checkpoint, 'Checkpoint')):
        if not (allow_urls and '://' in path):
            check_file_exist(path, f'{what} file {{!r}} does not exist; check the path{hint}')


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


# ------------------------------------------------------------------------------------ input size, clip length
def _resize_size(t: dict) -> Optional[Tuple[int, int]]:
    """``(H, W)`` a resize transform of a test pipeline gives every frame, or None (keeps the aspect ratio)."""
    kind = str(t.get('type', '')).split('.')[-1]
    if kind == 'AVSSResize' and t.get('mode', 'resize') in ('resize', 'short_side_crop'):
        return (int(t.get('size', 224)),) * 2
    if kind == 'Resize' and not t.get('keep_ratio', False) and t.get('scale') is not None:
        scale = t['scale']
        if isinstance(scale, int):
            return (scale, scale)
        return int(scale[1]), int(scale[0])  # mmcv's Resize scale is (w, h)
    return None


def _crop_size(t: dict) -> Optional[Tuple[int, int]]:
    """``(H, W)`` of a train pipeline's ``RandomCrop`` / ``Pad``, or None."""
    kind = str(t.get('type', '')).split('.')[-1]
    if kind == 'RandomCrop' and t.get('crop_size') is not None:
        size = t['crop_size']
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))  # (h, w)
    if kind == 'Pad' and t.get('size') is not None:
        size = t['size']
        return (int(size), int(size)) if isinstance(size, int) else (int(size[1]), int(size[0]))  # mmcv: (w, h)
    return None


def _walk(pipeline: Any) -> List[dict]:
    """The transforms of a pipeline, those wrapped by ``ClipConsistentTransform`` / ``TransformBroadcaster``
    (``transforms=[...]``) included, in order."""
    out = []
    for t in pipeline or []:
        if isinstance(t, dict):
            out.append(t)
            out += _walk(t.get('transforms'))
    return out


def _is_mapping(node: Any) -> bool:
    """A dict, ``ConfigDict`` or mmengine ``Config`` (which is no dict subclass)."""
    return isinstance(node, dict) or (hasattr(node, 'keys') and hasattr(node, 'get'))


def config_value(cfg: Any, dotted: str, default: Any = None) -> Any:
    """The value of a config at a dotted key (``a.b.0.c``: list items by index, as ``--cfg-options`` writes
    them), or ``default`` where the config has no such key."""
    node = cfg
    for key in dotted.split('.'):
        if _is_mapping(node) and key in node:
            node = node[key]
        elif isinstance(node, (list, tuple)) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return default
    return node


def config_test_pipeline(cfg: Any) -> List[dict]:
    """The test pipeline of a config: ``test_dataloader.dataset.pipeline`` (a wrapped dataset's inner one
    included), else the top-level ``test_pipeline``; ``[]`` when there is none."""
    dataset = config_value(cfg, 'test_dataloader.dataset') or {}
    while isinstance(dataset, dict) and 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    pipeline = dataset.get('pipeline') if isinstance(dataset, dict) else None
    return list(pipeline if pipeline is not None else (cfg.get('test_pipeline') or []))


def pipeline_input_size(cfg: Any) -> Optional[Tuple[int, int]]:
    """``(H, W)`` the config's test pipeline resizes frames to (``AVSSResize``, ``Resize(keep_ratio=False)``),
    or None when it keeps the frames' size."""
    sizes = [s for s in (_resize_size(t) for t in _walk(config_test_pipeline(cfg))) if s]
    return sizes[-1] if sizes else None


def _as_config(cfg: Any) -> Any:
    """A config object: ``cfg`` itself, or the config read from it when it is a file path."""
    if isinstance(cfg, str):
        from mmengine.config import Config

        return Config.fromfile(cfg)
    return cfg


def _load_frames_option(cfg: Any, key: str) -> Any:
    """``key`` of the test pipeline's ``LoadAVSFrames`` (the loader ``mmseg.apis.inference_model`` runs), or None."""
    for t in _walk(config_test_pipeline(cfg)):
        if str(t.get('type', '')).split('.')[-1] == 'LoadAVSFrames' and t.get(key):
            return t[key]
    return None


def config_input_size(cfg: Any) -> Optional[Tuple[int, int]]:
    """``(H, W)`` of the frames a config's model runs at, for tools that make their own inputs (the video demo,
    ``segment_video``, ONNX export, FLOP counts). ``cfg``: a config or its file path. The first that the config
    gives of:

    0. ``input_size`` of the test pipeline's ``LoadAVSFrames`` (the size ``mmseg.apis.inference_model`` resizes a
       video to);
    1. the test pipeline's resize (:func:`pipeline_input_size`);
    2. ``model.data_preprocessor.size`` (the fixed size it pads to);
    3. the top-level ``crop_size`` (mmseg's convention: the size the model is trained at);
    4. the train pipeline's ``RandomCrop`` / ``Pad`` size (clip-consistent wrappers included).

    Returns None when the config gives none of them (the model then takes frames as they come).
    """
    cfg = _as_config(cfg)
    loader = _load_frames_option(cfg, 'input_size')
    size = (int(loader[0]), int(loader[1])) if loader is not None else pipeline_input_size(cfg)
    if size is None:
        pre = config_value(cfg, 'model.data_preprocessor.size')
        crop = cfg.get('crop_size') if _is_mapping(cfg) else None
        for value in (pre, crop):
            if value is not None:
                size = (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))
                break
    if size is None:
        train = config_value(cfg, 'train_dataloader.dataset') or {}
        while isinstance(train, dict) and 'pipeline' not in train and isinstance(train.get('dataset'), dict):
            train = train['dataset']
        crops = [s for s in (_crop_size(t) for t in _walk(train.get('pipeline') if isinstance(train, dict) else []))]
        size = next((s for s in crops if s), None)
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise ValueError(f'the config gives the input size {size}; it must be two positive integers (H, W)')
    return size


def config_num_frames(cfg: Any, source: str = 'the config') -> int:
    """Frames per clip T of a config (or its file path): its top-level ``num_frames``, the test dataset's
    ``num_frames``, the test pipeline's ``LoadAVSFrames`` ``num_frames``, else the ``NUM_FRAMES`` of the test
    dataset's class (mmseg ``DATASETS``; 5 for S4 / MS3, 10 for AVSS).

    Raises:
        ValueError: the config gives no clip length (naming ``source`` and the fix).
    """
    cfg = _as_config(cfg)
    dataset = config_value(cfg, 'test_dataloader.dataset') or {}
    candidates = [cfg.get('num_frames') if _is_mapping(cfg) else None]
    types = []
    while isinstance(dataset, dict) and dataset:
        candidates.append(dataset.get('num_frames'))
        types.append(str(dataset.get('type', '')))
        dataset = dataset.get('dataset')
    candidates.append(_load_frames_option(cfg, 'num_frames'))
    for value in candidates:
        if value:
            return int(value)
    if any(types):
        from mmseg.registry import DATASETS

        for name in types:
            cls = DATASETS.get(name) if name else None
            if getattr(cls, 'NUM_FRAMES', None):
                return int(cls.NUM_FRAMES)
    raise ValueError(
        f'{source} does not give the clip length: its test dataset ({", ".join(t for t in types if t) or "none"}) '
        'has no NUM_FRAMES. Set num_frames = T at the top level of the config.'
    )


def model_input_size(
    cfg: Any, override: Optional[Sequence[int]] = None, flag: str = '--shape', source: str = 'the config'
) -> Tuple[int, int]:
    """``(H, W)`` a tool makes the model's inputs at: ``override`` (the tool's flag) if given, else
    :func:`config_input_size`.

    Raises:
        ValueError: ``override`` is not two positive integers, or neither it nor the config gives a size (naming
            ``flag`` and ``source``).
    """
    if override is not None:
        size = tuple(int(v) for v in override)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f'{flag} {" ".join(str(v) for v in override)}: give two positive integers H W')
        return size
    size = config_input_size(cfg)
    if size is None:
        raise ValueError(
            f'{source} gives no input size (no resize in its test pipeline, no data_preprocessor.size, no crop_size): '
            f'pass {flag} H W'
        )
    return size
