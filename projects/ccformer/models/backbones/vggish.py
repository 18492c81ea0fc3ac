"""VGGish audio encoder (AudioSet), layout of the ``harritaylor/torchvggish`` port.

The network is the one used by every AVSBench method: a VGG-like conv stack over a 0.96 s log-mel example
(96 frames x 64 mel bands), a flatten in TensorFlow order (NHWC) and three FC layers ending in a ReLU, giving a
128-d embedding per example. The PCA post-processor of the TF release is not applied (AVSBench disables it).

State-dict keys are those of the official PyTorch port (``vggish-10086976.pth``)::

    features.{0,3,6,8,11,13}.{weight,bias}   # conv layers (ReLU / max-pool in between)
    embeddings.{0,2,4}.{weight,bias}         # Linear 12288-4096, 4096-4096, 4096-128 (ReLU after each)

so the file loads with ``init_cfg=dict(type='Pretrained', checkpoint='pretrained/vggish-10086976.pth')``.
"""

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ...utils.checkpoint import check_pretrained_file, load_checkpoint_file

#: mel bins of a log-mel example (its last axis)
NUM_BANDS = 64

VGGISH_URL = 'https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth'


def _vggish_features(channels: Sequence[int] = (64, 128, 256, 512)) -> nn.Sequential:
    """Conv stack; indices 0, 3, 6, 8, 11, 13 are the convs (official key layout)."""
    c1, c2, c3, c4 = channels
    cfg = [c1, 'M', c2, 'M', c3, c3, 'M', c4, c4, 'M']
    layers, in_ch = [], 1
    for v in cfg:
        if v == 'M':
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_ch = v
    return nn.Sequential(*layers)


@MODELS.register_module()
class VGGish(BaseModule):
    """AudioSet VGGish embedding network (frozen by default).

    Args:
        channels (Sequence[int]): conv widths; the official network is (64, 128, 256, 512). Smaller widths
            (with ``fc_dims``) give a tiny encoder of the same structure for CPU tests / demos.
        fc_dims (Sequence[int]): widths of the two hidden FC layers; official (4096, 4096).
        frozen (bool): Freeze all weights (``requires_grad=False``), keep the module in eval mode during
            training and run it under ``torch.no_grad``. AVSBench work always freezes it. Default: True.
        stats_branch (bool): add ``Linear(2 * 64, 128)`` of each mel bin's mean and std over the example's 96
            frames to the last layer's pre-activation (an encoder trained from scratch; not in the official
            network, whose checkpoint then lacks ``stats.*``). Default: False (docs/robustness.md).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads the official
            ``vggish-10086976.pth`` (a plain state dict); every key must match (strict), otherwise a
            ``KeyError`` lists the missing / unexpected keys.

    Shapes:
        input ``(N, 1, 96, 64)`` log-mel examples -> output ``(N, 128)`` embeddings (>= 0, final ReLU).
    """

    def __init__(
        self,
        channels: Sequence[int] = (64, 128, 256, 512),
        fc_dims: Sequence[int] = (4096, 4096),
        frozen: bool = True,
        stats_branch: bool = False,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if stats_branch and frozen:
            raise ValueError(
                'VGGish: stats_branch=True adds a layer that has to be trained; set frozen=False (an encoder '
                'trained from scratch, as in the tiny configs)'
            )
        self.frozen = frozen
        # per mel bin, the mean and std over time of the example, projected onto the embedding
        self.stats = nn.Linear(2 * NUM_BANDS, 128) if stats_branch else None
        self.features = _vggish_features(channels)
        self.embeddings = nn.Sequential(
            nn.Linear(channels[3] * 4 * 6, fc_dims[0]),
            nn.ReLU(inplace=True),
            nn.Linear(fc_dims[0], fc_dims[1]),
            nn.ReLU(inplace=True),
            nn.Linear(fc_dims[1], 128),
            nn.ReLU(inplace=True),
        )
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def init_weights(self) -> None:
        """Load the official checkpoint strictly when ``init_cfg`` is ``Pretrained``."""
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        path = cfg['checkpoint']
        check_pretrained_file(path, 'VGGish', VGGISH_URL)
        ckpt = load_checkpoint_file(path, map_location='cpu')  # weights-only: never runs code
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
        state = {k[len('module.') :] if k.startswith('module.') else k: v for k, v in state.items()}
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(
                f'VGGish checkpoint "{path}" does not have the torchvggish key layout '
                f'(features.*, embeddings.*): missing {missing}, unexpected {unexpected}. '
                f'Use {VGGISH_URL}.'
            )
        self.load_state_dict(state, strict=True)
        self._is_init = True
        print_log(f'VGGish: loaded {len(state)} tensors from {path}', logger='current')

    def train(self, mode: bool = True) -> 'VGGish':
        """Keep eval mode when frozen."""
        return super().train(False if self.frozen else mode)

    def _embed(self, x: Tensor) -> Tensor:
        f = self.features(x)  # (N, 512, 6, 4) (official widths)
        f = f.permute(0, 2, 3, 1).flatten(1)  # TF (NHWC) order -> (N, 12288)
        if self.stats is None:
            return self.embeddings(f)  # (N, 128)
        stats = torch.cat([x[:, 0].mean(1), x[:, 0].std(1)], dim=1)  # (N, 2 * 64)
        return F.relu(self.embeddings[:-1](f) + self.stats(stats))

    def forward(self, x: Tensor) -> Tensor:
        """(N, 1, 96, 64) log-mel -> (N, 128) embedding."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 96, 64):
            raise ValueError(f'VGGish expects log-mel examples of shape (N, 1, 96, 64), got {tuple(x.shape)}')
        if self.frozen:
            with torch.no_grad():
                return self._embed(x)
        return self._embed(x)
