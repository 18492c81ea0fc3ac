"""What a benchmark runs: a model built from a config without pretrained weights, random inputs of the data
preprocessor's shapes and the modules that are timed.

Shapes (``docs/design.md``): frames ``(N, T, 3, H, W)`` (normalised floats), log-mel audio ``(N, T, 1, 96, 64)``,
ground truth ``(T, H, W)`` per clip.
"""

import argparse
import os
from typing import Any, Dict, Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

from ..deployment.onnx_export import TensorCore
from ..engine.safe_checkpoint import load_model_checkpoint
from ..utils import strip_pretrained

#: one VGGish log-mel example per frame
AUDIO_SHAPE = (1, 96, 64)


def load_config(path: str, cfg_options: Sequence[str] = ()) -> Config:
    """Load a config, apply ``KEY=VALUE`` overrides (mmengine ``DictAction`` syntax) and strip pretrained weights
    from ``cfg.model``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'config file {path!r} does not exist; pass a path such as '
            'configs/ccformer/<name>.py (run from the repository root)'
        )
    cfg = Config.fromfile(path)
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    if 'model' not in cfg:
        raise KeyError(f'config {path!r} has no `model` entry')
    strip_pretrained(cfg.model)
    return cfg


def build_model(cfg: Config, checkpoint: Optional[str] = None) -> nn.Module:
    """Build ``cfg.model`` on the CPU in the config's default scope, initialise it and load ``checkpoint`` (read
    without executing code; a checkpoint of another model is refused)."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    if hasattr(model, 'init_weights'):
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel('WARNING')  # mmengine logs every parameter's init at INFO
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    if checkpoint:
        load_model_checkpoint(model, checkpoint, config=str(cfg.filename or ''))
    if not hasattr(model, 'backbone'):
        raise AttributeError(
            f'benchmark: {type(model).__name__} has no `backbone` attribute; '
            'use --parts model to time the whole model only'
        )
    return model


def num_classes_of(model: nn.Module) -> int:
    """Number of label values the ground truth may hold (2 for binary masks)."""
    head = getattr(model, 'decode_head', None)
    k = getattr(head, 'num_classes', None) or getattr(head, 'out_channels', None) or 1
    return max(int(k), 2)


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def make_inputs(
    batch: int, frames: int, size: int, device: torch.device, generator: torch.Generator
) -> Dict[str, torch.Tensor]:
    """Random preprocessed inputs: ``inputs (N, T, 3, H, W)`` ~ N(0, 1) and ``audio (N, T, 1, 96, 64)``."""
    inputs = torch.randn(batch, frames, 3, size, size, generator=generator)
    audio = torch.randn(batch, frames, *AUDIO_SHAPE, generator=generator)
    return dict(inputs=inputs.to(device), audio=audio.to(device))


def make_data_samples(
    batch: int,
    frames: int,
    size: int,
    num_classes: int,
    gt_valid: str,
    device: torch.device,
    generator: torch.Generator,
) -> list:
    """``SegDataSample`` per clip with random blob masks ``(T, H, W)`` and the metainfo of ``docs/design.md``;
    ``gt_valid`` ``'all'`` labels every frame, ``'first'`` frame 1 only (S4 training)."""
    samples = []
    for b in range(batch):
        low = torch.rand(frames, 1, 7, 7, generator=generator)
        blobs = nn.functional.interpolate(low, size=(size, size), mode='bilinear', align_corners=False)[:, 0]
        if num_classes <= 2:
            gt = (blobs > 0.5).long()
        else:
            labels = torch.randint(1, num_classes, (frames, 1, 1), generator=generator)
            gt = torch.where(blobs > 0.5, labels, torch.zeros_like(labels))
        valid = [1] * frames if gt_valid == 'all' else [1] + [0] * (frames - 1)
        gt = gt * torch.tensor(valid).view(frames, 1, 1)
        sample = SegDataSample(
            metainfo=dict(
                video_id=f'bench_{b}',
                category='',
                img_path=f'bench_{b}/0.png',
                frame_paths=[f'bench_{b}/{t}.png' for t in range(frames)],
                audio_path=f'bench_{b}.pkl',
                ori_shape=(size, size),
                img_shape=(size, size),
                pad_shape=(size, size),
                num_frames=frames,
                frame_valid=[1] * frames,
                gt_valid=valid,
                flip=False,
                flip_direction=None,
                scale_factor=(1.0, 1.0),
            )
        )
        sample.gt_sem_seg = PixelData(data=gt.to(device))
        samples.append(sample)
    return samples


class BackboneForward(nn.Module):
    """``backbone(frames.flatten(0, 1))``: the visual encoder alone on ``(N, T, 3, H, W)`` frames."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, inputs: torch.Tensor) -> Any:
        return self.backbone(inputs.flatten(0, 1))


__all__ = [
    'AUDIO_SHAPE',
    'TensorCore',
    'BackboneForward',
    'load_config',
    'build_model',
    'num_classes_of',
    'count_params',
    'make_inputs',
    'make_data_samples',
]
