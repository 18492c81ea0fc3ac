"""Any timm model as a multi-scale backbone, loading the *official* (non-timm) checkpoint layouts.

mmseg's ``TIMMBackbone`` uses ``features_only`` models and timm's ``checkpoint_path`` loader, which applies no key
remapping, so the original release files (e.g. whai362 ``pvt_v2_b5.pth``: ``patch_embed1.*``, ``block1.0.*``) do
not load through it. This wrapper builds the full timm model, takes its stage outputs with timm's
``forward_intermediates`` (timm >= 1.0) and, for a ``Pretrained`` ``init_cfg``, remaps the file with the model
module's own ``checkpoint_filter_fn`` (timm's converter for the original layout), then loads it and raises if a
backbone parameter is left unloaded. timm's PVT-v2 runs its attention with
``torch.nn.functional.scaled_dot_product_attention``.
"""

import sys
from typing import List, Optional, Sequence

import timm
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

from ...utils.checkpoint import check_pretrained_file, load_checkpoint_file

PVT_V2_URL = 'https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth'


@MODELS.register_module()
class TimmPyramidBackbone(BaseModule):
    """Stage outputs of a timm model (NCHW maps at strides 4/8/16/32 for pyramid models).

    Args:
        model_name (str): timm model name, e.g. ``'pvt_v2_b5'``, ``'resnet50'``, ``'convnext_tiny'``.
        out_indices (Sequence[int]): stages to return. Default: (0, 1, 2, 3).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)``; the file may use timm's or
            the original release's key layout (remapped by timm's ``checkpoint_filter_fn``).
        **kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``, ``embed_dims``, ``depths``).

    Shapes:
        ``(N, 3, H, W)`` -> list of ``(N, C_i, H / s_i, W / s_i)``; ``self.channels`` gives ``C_i``.
    """

    def __init__(
        self, model_name: str, out_indices: Sequence[int] = (0, 1, 2, 3), init_cfg: Optional[dict] = None, **kwargs
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.model_name = model_name
        self.out_indices = list(out_indices)
        model = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
        if not hasattr(model, 'forward_intermediates'):
            raise TypeError(
                f'timm model {model_name!r} has no forward_intermediates(); upgrade timm (>=1.0) '
                f'or use mmseg TIMMBackbone for it.'
            )
        model.prune_intermediate_layers(self.out_indices, prune_norm=True, prune_head=True)
        self.model = model
        info = model.feature_info
        self.channels = [info[i]['num_chs'] for i in self.out_indices]
        self.strides = [info[i]['reduction'] for i in self.out_indices]

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()  # timm's own initialisation was done at construction
            return
        path = cfg['checkpoint']
        check_pretrained_file(
            path, f'TimmPyramidBackbone({self.model_name})', PVT_V2_URL if self.model_name == 'pvt_v2_b5' else ''
        )
        ckpt = load_checkpoint_file(path, map_location='cpu')  # weights-only: never runs code
        state = ckpt
        for key in ('state_dict', 'model'):
            if isinstance(state, dict) and key in state:
                state = state[key]
        filter_fn = getattr(sys.modules[type(self.model).__module__], 'checkpoint_filter_fn', None)
        if filter_fn is not None:
            state = filter_fn(state, self.model)
        own = self.model.state_dict()
        missing = sorted(k for k in own if k not in state)
        if missing:
            raise KeyError(
                f'TimmPyramidBackbone({self.model_name}): checkpoint "{path}" leaves {len(missing)} '
                f'backbone tensors unloaded, e.g. {missing[:5]}; is it the right model?'
            )
        bad = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
        if bad:
            raise ValueError(f'TimmPyramidBackbone({self.model_name}): shape mismatch in "{path}" for {bad[:5]}')
        self.model.load_state_dict({k: state[k] for k in own}, strict=True)
        self._is_init = True
        print_log(
            f'TimmPyramidBackbone: loaded {len(own)} tensors of {self.model_name} from {path} '
            f'({len(set(state) - set(own))} unused, e.g. the classifier)',
            logger='current',
        )

    def forward(self, x: Tensor) -> List[Tensor]:
        """(N, 3, H, W) -> list of (N, C_i, H/s_i, W/s_i)."""
        return self.model.forward_intermediates(x, indices=self.out_indices, intermediates_only=True)
