"""CCFormer decode head: the Multi-query Transformer Module and the
segmentation head (Sec. III-C, III-D, III-E of Gong et al., TMM 2025)."""

import copy
import logging
import re
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.model import BaseModule, ModuleList
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor, nn

from ..utils import EIMOutput, HeadOutput
from .category_bridge import CategoryBridge  # noqa: F401 (registers it)
from .layers import CCFormerEncoder, ConstCache
from .presence import AudioVisualPresence  # noqa: F401 (registers it)

ConfigType = Union[dict, ConfigDict]

#: Default encoder: 3 deformable self-attention layers over 3 levels, FFN
#: 1024 wide (Deformable DETR's and Mask2Former's pixel-decoder width; the
#: paper gives none). With FFN 2048 the encoder costs 19.6 G multiply-adds
#: per 5-frame 224 x 224 clip, with 1024 11.5 G (docs/model_size.md).
DEFAULT_ENCODER = dict(
    num_layers=3,
    layer_cfg=dict(
        self_attn_cfg=dict(
            embed_dims=256, num_heads=8, num_levels=3, num_points=4, dropout=0.1, batch_first=True, im2col_step=128
        ),
        ffn_cfg=dict(embed_dims=256, feedforward_channels=1024, ffn_drop=0.1, act_cfg=dict(type='ReLU', inplace=True)),
    ),
)

#: Official AVSegFormer Dice: 1 - 2*sum(pg) / (sum(p^2)+1e-3 + sum(g^2)+1e-3).
BINARY_LOSS = dict(
    type='mmdet.DiceLoss',
    use_sigmoid=True,
    activate=True,
    naive_dice=False,
    eps=1e-3,
    reduction='mean',
    loss_weight=1.0,
)
#: AVSS: per-pixel cross-entropy.
SEMANTIC_LOSS = dict(
    type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0, loss_name='loss_ce', avg_non_ignore=True
)


def _with_dims(cfg: Optional[ConfigType], default: dict, **dims) -> dict:
    """Copy ``cfg`` (or ``default``) and fill the given keys if missing."""
    cfg = copy.deepcopy(dict(cfg) if cfg is not None else default)
    for key, value in dims.items():
        cfg.setdefault(key, value)
    return cfg


@MODELS.register_module()
class CCFormerHead(BaseModule):
    """Multi-query Transformer Module + cross-modal FPN segmentation head.

    Data flow (d = ``embed_dims``, N = ``num_queries``, K = ``num_classes``)::

        x.feats[1:]  (B*T, d, H/s, W/s), s = 8, 16, 32   (x: the EIM's EIMOutput)
          -> flatten + 2-D sine position + level embedding
          -> encoder: 3 deformable self-attention layers per frame (mmdet
             Deformable-DETR encoder, mmcv MSDA)  -> memory (B*T, L, d)
        x.audio (B, T, d) enhanced
          -> query_generator -> intra-frame queries (B*T, N, d)
          -> decoder: ICI (per frame, batched) + ITI (per clip), Eq. 7-10
             -> combined queries per stage, S x (B*T, N, d)
        [x.feats[0], memory maps] + x.audio_orig
          -> seg_head (cross-modal FPN + dynamic conv + MLP + FC)
          -> logits per stage, S x (B*T, K, H/4, W/4)
        x.audio_orig + x.feats_orig (presence_head, optional)
          -> presence logit per frame (B*T,) (in training with map_loss_weight > 0 also the map of every
             location, presence_map (B*T, h, w))
        forward -> HeadOutput(stage_logits, presence)

    Losses (``loss`` / ``loss_by_feat``): on every stage's logits (deep supervision, Sec.
    III-E), bilinearly resized to the GT size, only on frames with
    ``gt_valid`` = 1. K = 1: Dice (mmdet ``DiceLoss``, naive_dice=False,
    eps=1e-3: the official AVSegFormer formula) averaged over supervised
    frames. K > 1: per-pixel cross-entropy averaged per frame over its
    pixels (``ignore_index`` pixels left out), weighted by ``gt_valid``,
    summed and divided by the number of supervised frames (official AVSS).
    Keys: ``loss_dice`` (last stage), ``d0.loss_dice``, ``d1.loss_dice``, ...

    Args:
        num_classes (int): K, 1 (S4/MS3) or 71 (AVSS).
        embed_dims (int): d.
        num_queries (int): N.
        encoder (dict): :class:`CCFormerEncoder` (mmdet
            ``DeformableDetrTransformerEncoder``) config.
        positional_encoding (dict): mmdet ``SinePositionalEncoding`` config.
        query_generator (dict): :class:`AttentionQueryGenerator` config.
        decoder (dict): :class:`MultiQueryTransformerDecoder` config.
        seg_head (dict): :class:`CrossModalFPNHead` config.
        loss_decode (dict | list[dict] | None): losses; None picks Dice for
            K = 1 and cross-entropy for K > 1.
        deep_supervision (bool): supervise every stage (True) or the last.
        ignore_index (int): GT value to ignore (padding, 255).
        align_corners (bool): for resizing (False).
        threshold (float): K = 1: a pixel is foreground when its sigmoid
            probability exceeds it (``CCFormer.postprocess_result``); in
            (0, 1), default 0.5 (logit > 0).
        presence_head (dict | None): e.g. ``dict(type='AudioVisualPresence',
            loss_weight=1.0, balanced=False)``: a presence logit per frame
            (does anything visible make the frame's sound?) from the original
            audio and the EIM's visual tokens (``balanced``: positive and
            negative frames weigh half each in the loss). Trained with a binary cross-entropy
            (``loss_presence``) whose target is 1 when the frame's ground
            truth has any foreground; a frame without a label (``gt_valid``
            0) takes its target from metainfo ``sounding`` (1 / 0; -1 or
            absent: not supervised), which negative audio sets to 0 on the
            frames it replaces. ``map_loss_weight`` (>= 0, default 0) weighs a
            second loss, ``loss_presence_map``, on the presence head's match
            logit of every location (:meth:`_presence_map_loss`: on labelled
            frames the share of each cell that the mask covers, on frames with
            presence target 0 and on digitally silent labelled frames none;
            ``map_loss_type='softmax'``: a cross-entropy of the softmax over the
            frame's cells against the mask's share of each, on labelled frames
            that are heard and have foreground only, which leaves the level of the match to
            ``loss_presence``; default ``'bce'``),
            so the score says which visible object
            sounds, not only whether one does; the map is computed in training
            mode only (``self.training``), so a loss computed in eval mode has
            no ``loss_presence_map``. At inference it gates the masks
            (:meth:`gate`), so a frame in which nothing on screen sounds
            comes out empty. None (default, the paper): none.
        presence_margin (float): shift of the presence gate (a frame is emptied where the presence logit is
            below ``-presence_margin``).
        category_head (dict | None): e.g. ``dict(type='CategoryBridge', num_categories=32, loss_weight=1.0)``
            (binary heads): category scores of each frame's sound and of each place of the frame, trained on the
            data samples' metainfo ``category_index`` (``loss_category_audio``, ``loss_category_visual``). At
            inference the mask logits are lowered by the bridge's evidence against the heard category
            (``logits + min(r + category_margin, 0)``, :meth:`CategoryBridge.lower`), so a place that shows
            another category than the one heard comes out empty, and a sound the bridge does not recognise
            changes nothing. None (default, the paper): none.
        category_margin (float): shift of ``r`` before it is applied.
    """

    def __init__(
        self,
        num_classes: int,
        embed_dims: int = 256,
        num_queries: int = 5,
        encoder: Optional[ConfigType] = None,
        positional_encoding: Optional[ConfigType] = None,
        query_generator: Optional[ConfigType] = None,
        decoder: Optional[ConfigType] = None,
        seg_head: Optional[ConfigType] = None,
        loss_decode: Optional[Union[ConfigType, Sequence[ConfigType]]] = None,
        deep_supervision: bool = True,
        ignore_index: int = 255,
        align_corners: bool = False,
        threshold: float = 0.5,
        presence_head: Optional[ConfigType] = None,
        presence_margin: float = 0.0,
        category_head: Optional[ConfigType] = None,
        category_margin: float = 0.0,
        init_cfg: Optional[ConfigType] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError('CCFormerHead: num_classes must be 1 (binary) or the number of classes (71 for AVSS).')
        self.num_classes = num_classes
        self.out_channels = num_classes
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.deep_supervision = deep_supervision
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        if not 0.0 < threshold < 1.0:
            raise ValueError(f'CCFormerHead: threshold is a probability in (0, 1), got {threshold}.')
        self.threshold = threshold

        if encoder is None:  # the default at this embed_dims
            encoder = copy.deepcopy(DEFAULT_ENCODER)
            for part in ('self_attn_cfg', 'ffn_cfg'):
                encoder['layer_cfg'][part]['embed_dims'] = embed_dims
        enc_cfg = ConfigDict(copy.deepcopy(dict(encoder)))
        self.encoder = CCFormerEncoder(**enc_cfg)
        self.num_levels = enc_cfg.layer_cfg.self_attn_cfg.num_levels
        if self.num_levels != 3:
            raise ValueError(
                'CCFormerHead: the encoder runs over strides '
                '8/16/32, set encoder.layer_cfg.self_attn_cfg.'
                f'num_levels=3 (got {self.num_levels}).'
            )
        if self.encoder.embed_dims != embed_dims:
            raise ValueError(f'CCFormerHead: encoder embed_dims {self.encoder.embed_dims} != {embed_dims}.')
        pos_cfg = _with_dims(
            positional_encoding, dict(num_feats=embed_dims // 2, normalize=True), type='mmdet.SinePositionalEncoding'
        )
        self.pos_enc = MODELS.build(pos_cfg)
        self.level_embed = nn.Parameter(torch.empty(self.num_levels, embed_dims))
        nn.init.normal_(self.level_embed)
        self.query_generator = MODELS.build(
            _with_dims(
                query_generator, dict(), type='AttentionQueryGenerator', embed_dims=embed_dims, num_queries=num_queries
            )
        )
        self.decoder = MODELS.build(
            _with_dims(
                decoder, dict(), type='MultiQueryTransformerDecoder', embed_dims=embed_dims, num_queries=num_queries
            )
        )
        self.seg_head = MODELS.build(
            _with_dims(
                seg_head,
                dict(),
                type='CrossModalFPNHead',
                embed_dims=embed_dims,
                num_queries=num_queries,
                num_classes=num_classes,
            )
        )
        if loss_decode is None:
            loss_decode = BINARY_LOSS if num_classes == 1 else SEMANTIC_LOSS
        if isinstance(loss_decode, (dict, ConfigDict)):
            loss_decode = [loss_decode]
        self.loss_decode = ModuleList([MODELS.build(copy.deepcopy(cfg)) for cfg in loss_decode])
        self.loss_names = [self._loss_name(cfg, m) for cfg, m in zip(loss_decode, self.loss_decode)]
        self.presence_margin = float(presence_margin)
        self.presence_head = None
        if presence_head is not None:
            presence_head = dict(presence_head)
            self.presence_loss_weight = float(presence_head.pop('loss_weight', 1.0))
            self.presence_balanced = bool(presence_head.pop('balanced', False))
            self.presence_map_loss_weight = float(presence_head.pop('map_loss_weight', 0.0))
            if self.presence_map_loss_weight < 0:
                raise ValueError(
                    f'CCFormerHead: presence_head.map_loss_weight must be >= 0 (0 leaves the map untrained), got '
                    f'{self.presence_map_loss_weight}.'
                )
            self.presence_map_loss_type = str(presence_head.pop('map_loss_type', 'bce'))
            if self.presence_map_loss_type not in ('bce', 'softmax'):
                raise ValueError(
                    f"CCFormerHead: presence_head.map_loss_type must be 'bce' or 'softmax', got "
                    f'{self.presence_map_loss_type!r}.'
                )
            if self.presence_map_loss_type != 'bce' and self.presence_map_loss_weight == 0:
                raise ValueError(
                    f"CCFormerHead: presence_head.map_loss_type='{self.presence_map_loss_type}' trains the presence "
                    f'map, which map_loss_weight=0 leaves untrained; set map_loss_weight > 0.'
                )
            self.presence_head = MODELS.build(
                _with_dims(presence_head, dict(), type='AudioVisualPresence', embed_dims=embed_dims)
            )
        self.category_margin = float(category_margin)
        self.category_head = None
        self._warned_no_category = False
        if category_head is not None:
            if num_classes != 1:
                raise ValueError(
                    'CCFormerHead: category_head needs a binary head (num_classes=1, S4-style data with one '
                    'category per clip); a semantic head classifies the pixels itself.'
                )
            category_head = dict(category_head)
            self.category_loss_weight = float(category_head.pop('loss_weight', 1.0))
            self.category_head = MODELS.build(
                _with_dims(category_head, dict(), type='CategoryBridge', embed_dims=embed_dims)
            )
        self._const = ConstCache()

    @staticmethod
    def _loss_name(cfg: ConfigType, loss: nn.Module) -> str:
        name = getattr(loss, 'loss_name', None)
        if name:
            return name
        base = cfg['type'].split('.')[-1]
        base = re.sub(r'Loss$', '', base)
        return 'loss_' + re.sub(r'(?<!^)(?=[A-Z])', '_', base).lower()

    # ------------------------------------------------------------- encoder
    def _level_meta(self, shapes: tuple, device: torch.device) -> tuple:
        """Cached per input size: spatial_shapes (3, 2), level_start_index
        (3,), encoder reference points (1, L, 3, 2), sine positions
        (1, L, d), level ids (L,) and the deformable attention's offset
        normalizer (1, 1, 1, 3, 1, 2) float (w, h)."""
        key = ('levels', shapes, device)

        def build() -> tuple:
            spatial = torch.tensor(shapes, dtype=torch.long, device=device)
            sizes = [h * w for h, w in shapes]
            starts = torch.tensor([sum(sizes[:i]) for i in range(len(sizes))], dtype=torch.long, device=device)
            refs, poss, ids = [], [], []
            for lvl, (h, w) in enumerate(shapes):
                ys, xs = torch.meshgrid(
                    (torch.arange(h, device=device) + 0.5) / h,
                    (torch.arange(w, device=device) + 0.5) / w,
                    indexing='ij',
                )
                refs.append(torch.stack([xs.flatten(), ys.flatten()], -1))
                pos = self.pos_enc(None, torch.empty(1, 1, h, w, device=device))
                poss.append(pos.flatten(2).transpose(1, 2))
                ids.append(torch.full((h * w,), lvl, device=device))
            ref = torch.cat(refs)[None, :, None].expand(-1, -1, len(shapes), -1).contiguous()
            norm = spatial.flip(-1).float()[None, None, None, :, None, :]
            return (spatial, starts, ref, torch.cat(poss, 1), torch.cat(ids), norm)

        return self._const(key, build)

    def _check_inputs(self, x: EIMOutput) -> None:
        """The head's one input check: the neck's output type and sizes."""
        if not isinstance(x, EIMOutput):
            raise TypeError(
                'CCFormerHead: the neck must return an EIMOutput '
                f'(projects.ccformer.models.utils), got '
                f'{type(x).__name__}.'
            )
        if len(x.feats) != 4:
            raise ValueError(
                f'CCFormerHead: EIMOutput.feats must hold 4 maps (strides 4, 8, 16, 32), got {len(x.feats)}.'
            )
        if x.embed_dims != self.embed_dims or x.feats[0].shape[1] != self.embed_dims:
            raise ValueError(
                f'CCFormerHead: the neck outputs '
                f'{x.embed_dims} channels, the head has '
                f'embed_dims={self.embed_dims}; set the same '
                'embed_dims in neck and decode_head.'
            )

    def _encode(self, feats: List[Tensor]) -> tuple:
        """Deformable encoder over strides 8/16/32.

        Returns:
            tuple: memory (B*T, L, d), its maps [3 x (B*T, d, h, w)], and
            the levels as the deformable attention's keyword arguments:
            dict(spatial_shapes (3, 2), level_start_index (3,),
            offset_normalizer (1, 1, 1, 3, 1, 2), spatial_shapes_list (the
            (h, w) as Python ints)).
        """
        shapes = tuple((f.shape[-2], f.shape[-1]) for f in feats)
        spatial, starts, ref, pos, ids, norm = self._level_meta(shapes, feats[0].device)
        levels = dict(
            spatial_shapes=spatial, level_start_index=starts, offset_normalizer=norm, spatial_shapes_list=shapes
        )
        tokens = torch.cat([f.flatten(2) for f in feats], 2).transpose(1, 2)
        pos = (pos + self.level_embed[ids][None]).to(tokens.dtype)
        memory = self.encoder(tokens, pos, ref, **levels)
        maps = [
            m.transpose(1, 2).reshape(m.shape[0], -1, h, w)
            for m, (h, w) in zip(memory.split([h * w for h, w in shapes], dim=1), shapes)
        ]
        return memory, maps, levels

    # ------------------------------------------------------------- forward
    def _run(self, x: EIMOutput, all_stages: bool) -> HeadOutput:
        """Shared forward: the stage logits (all S stages, or the last one only) and the presence logits."""
        self._check_inputs(x)
        num_frames = x.num_frames
        memory, maps, levels = self._encode(x.feats[1:])
        query, query_pos = self.query_generator(x.audio, x.frame_valid)
        stages = self.decoder(query, query_pos, memory, num_frames, x.frame_valid, **levels)
        if not all_stages:
            stages = stages[-1:]
        mask_feat = self.seg_head.forward_pixel([x.feats[0]] + maps, x.audio_orig, num_frames, x.frame_valid)
        logits = self.seg_head.forward_masks(mask_feat, torch.stack(stages))
        presence = presence_map = None
        if self.presence_head is not None:
            if self.training and self.presence_map_loss_weight > 0:
                presence_map = self.presence_head.forward_map(x.audio_orig, x.feats_orig)
                presence = presence_map.flatten(1).amax(1).to(logits.dtype)
            else:
                presence = self.presence_head(x.audio_orig, x.feats_orig).to(logits.dtype)
        cat_audio = cat_visual = None
        if self.category_head is not None:
            cat_audio, cat_visual = self.category_head(x.audio_orig, x.feats_orig)
        return HeadOutput(list(logits.unbind(0)), presence, cat_audio, cat_visual, presence_map)

    @staticmethod
    def gate(logits: Tensor, presence: Tensor) -> Tensor:
        """Masks gated by the presence logit (nothing sounds -> empty).

        logits (M, K, h, w), presence (M, 1, 1, 1) -> (M, K, h, w). K = 1:
        ``min(logit, presence)``, so a pixel is foreground only when both
        are positive. K > 1: the background logit is raised to at least
        ``max_foreground - presence``, so background wins wherever the
        presence logit is negative and nothing changes where it is positive.
        """
        if logits.shape[1] == 1:
            return torch.minimum(logits, presence)
        bg = torch.maximum(logits[:, :1], logits[:, 1:].amax(1, keepdim=True) - presence)
        return torch.cat([bg, logits[:, 1:]], 1)

    def forward(self, x: EIMOutput) -> HeadOutput:
        """Logits of every decoder stage and the presence score of every frame.

        Args:
            x (EIMOutput): the neck's output; ``feats`` 4 x (B*T, d, H_i,
                W_i) at strides 4/8/16/32, ``audio`` (B, T, d) enhanced,
                ``audio_orig`` (B, T, d) projected, ``frame_valid`` (B, T)
                bool or None. T = ``x.num_frames``.

        Returns:
            HeadOutput: ``stage_logits`` S x (B*T, K, H/4, W/4), ungated
            mask logits, and ``presence`` (B*T,) logits (None without
            ``presence_head``): the input of :meth:`loss_by_feat`.
            :meth:`predict` returns the gated final logits.
        """
        return self._run(x, True)

    def predict(
        self, x: EIMOutput, batch_img_metas: Optional[List[dict]] = None, test_cfg: Optional[ConfigType] = None
    ) -> Tensor:
        """Final logits (B*T, K, H/4, W/4) (mask head on the last stage
        only), lowered by the category evidence against the heard category when the head has a
        ``category_head``, then gated by the presence score when it has a presence head
        (:meth:`gate`, shifted by ``presence_margin``); the segmentor
        resizes them with ``batch_img_metas``, which the head does not need
        (kept for mmseg's head signature), nor ``test_cfg``."""
        out = self._run(x, False)
        logits = out.stage_logits[-1]
        if out.category_audio is not None:
            logits = self.category_head.lower(logits, out.category_audio, out.category_visual, self.category_margin)
        if out.presence is None:
            return logits
        return self.gate(logits, out.presence.view(-1, 1, 1, 1) + self.presence_margin)

    # ---------------------------------------------------------------- loss
    def _gt(self, data_samples: Sequence[SegDataSample], num_frames: int, device: torch.device) -> tuple:
        """GT (B*T, H, W) long and per-frame weights (B*T,) from gt_valid."""
        gts, weights = [], []
        for i, sample in enumerate(data_samples):
            gt = sample.gt_sem_seg.data
            if gt.dim() != 3 or gt.shape[0] != num_frames:
                raise ValueError(
                    f'CCFormerHead.loss: data_samples[{i}].gt_sem_seg.data '
                    f'has shape {tuple(gt.shape)}, expected (T={num_frames}, '
                    'H, W); PackAVSInputs must stack the T masks.'
                )
            valid = sample.metainfo.get('gt_valid')
            if valid is None or len(valid) != num_frames:
                raise ValueError(
                    f'CCFormerHead.loss: data_samples[{i}] metainfo gt_valid '
                    f'is {valid!r}; it must list T={num_frames} flags '
                    '(1 = supervised frame), set by the dataset.'
                )
            gts.append(gt)
            weights.extend(float(v) for v in valid)
        w = torch.tensor(weights, dtype=torch.float32)
        if device.type == 'cuda':
            w = w.pin_memory().to(device, non_blocking=True)
        else:
            w = w.to(device)
        return torch.stack(gts).flatten(0, 1).to(device), w

    def _frame_losses(self, logits: Tensor, gt: Tensor) -> List[Tensor]:
        """Per-frame loss of every loss module.

        logits (M, K, H, W) float at GT size, gt (M, H, W) long ->
        list of (M,) tensors.
        """
        valid = gt != self.ignore_index
        out = []
        for loss in self.loss_decode:
            if self.num_classes == 1:
                # ignored pixels: logit -1e4 (sigmoid 0) and target 0, so they
                # add nothing to the Dice sums.
                pred = logits[:, 0].masked_fill(~valid, -1e4).flatten(1)
                target = (gt == 1).flatten(1).float()
                value = loss(pred, target, reduction_override='none')
                if value.dim() > 1:
                    count = valid.flatten(1).sum(1).clamp(min=1)
                    value = (value * valid.flatten(1)).sum(1) / count
            else:
                value = loss(logits, gt, reduction_override='none', ignore_index=self.ignore_index)
                if value.dim() > 1:
                    count = valid.flatten(1).sum(1).clamp(min=1)
                    value = value.flatten(1).sum(1) / count
            out.append(value)
        return out

    def loss_by_feat(
        self, head_out: Union[HeadOutput, Sequence[Tensor]], data_samples: Sequence[SegDataSample]
    ) -> Dict[str, Tensor]:
        """Losses from the output of :meth:`forward` (see :meth:`loss`); a
        plain list of stage logits is taken as a :class:`HeadOutput`
        without presence. T is the number of predicted frames per data
        sample."""
        if not isinstance(head_out, HeadOutput):
            head_out = HeadOutput(list(head_out))
        if self.presence_head is not None and head_out.presence is None:
            raise ValueError(
                'CCFormerHead.loss: the head has a presence_head, so loss_by_feat needs the HeadOutput of '
                'forward() (with its presence logits), not the stage logits alone.'
            )
        stage_logits = head_out.stage_logits
        if not data_samples or stage_logits[0].shape[0] % len(data_samples):
            raise ValueError(
                f'CCFormerHead.loss: {len(data_samples)} data '
                f'samples do not divide the '
                f'{stage_logits[0].shape[0]} predicted frames.'
            )
        num_frames = stage_logits[0].shape[0] // len(data_samples)
        if not self.deep_supervision:
            stage_logits = stage_logits[-1:]
        logits = torch.stack(stage_logits)  # (S, B*T, K, h, w)
        presence = head_out.presence.float() if self.presence_head is not None else None
        if self.category_head is not None and head_out.category_audio is None:
            raise ValueError(
                'CCFormerHead.loss: the head has a category_head, so loss_by_feat needs the HeadOutput of '
                'forward() (with its category logits).'
            )
        s, bt = logits.shape[:2]
        gt, weight = self._gt(data_samples, num_frames, logits.device)
        if gt.shape[0] != bt:
            raise ValueError(
                f'CCFormerHead.loss: {len(data_samples)} data samples x T={num_frames} != {bt} predicted frames.'
            )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = F.interpolate(
                logits.flatten(0, 1).float(), size=gt.shape[-2:], mode='bilinear', align_corners=self.align_corners
            )
            gt_s = gt[None].expand(s, -1, -1, -1).flatten(0, 1)
            denom = weight.sum().clamp(min=1.0)
            losses = {}
            for name, value in zip(self.loss_names, self._frame_losses(logits, gt_s)):
                per_stage = (value.view(s, bt) * weight).sum(1) / denom
                for i in range(s):
                    key = name if i == s - 1 else f'd{i}.{name}'
                    losses[key] = per_stage[i]
            if presence is not None or self.category_head is not None:
                target, p_weight, sounding = self._presence_target(gt, weight, data_samples, num_frames)
            if presence is not None:
                value = F.binary_cross_entropy_with_logits(presence, target, reduction='none') * p_weight
                if self.presence_balanced:
                    # the mean over positives and the mean over negatives weigh alike (a class absent from the
                    # batch drops out)
                    parts = [
                        (value * t).sum() / (t * p_weight).sum()
                        for t in (target, 1 - target)
                        if float((t * p_weight).sum()) > 0
                    ]
                    value = torch.stack(parts).mean() if parts else value.sum()
                else:
                    value = value.sum() / p_weight.sum().clamp(min=1.0)
                losses['loss_presence'] = self.presence_loss_weight * value
                if head_out.presence_map is not None:
                    losses['loss_presence_map'] = self.presence_map_loss_weight * self._presence_map_loss(
                        head_out.presence_map.float(), gt, weight, target, p_weight, sounding
                    )
            if self.category_head is not None:
                # heard as the clip's category: presence target 1, and not digitally silent (a labelled frame keeps
                # its mask but is not heard then)
                heard = (target > 0) & (p_weight > 0) & (sounding != 0)
                losses.update(self._category_losses(head_out, data_samples, num_frames, gt, weight > 0, heard))
        return losses

    def _presence_map_loss(
        self, pmap: Tensor, gt: Tensor, weight: Tensor, target: Tensor, p_weight: Tensor, sounding: Tensor
    ) -> Tensor:
        """``loss_presence_map``: a binary cross-entropy of every location's match logit (pmap ``(M, h, w)``, the map
        at the presence head's ``in_index``) against the share of its cell that the ground truth (gt ``(M, H, W)``)
        covers with foreground, pixels of ``ignore_index`` left out.

        Frames: the labelled ones (``weight`` > 0) against their mask; against 0 everywhere the labelled frames whose
        audio is digitally silent (metainfo ``sounding`` 0: nothing can be heard, whatever the mask) and the frames
        whose presence target is 0 without a label (negative audio: nothing visible sounds); a sounding frame without
        a label takes no part. The mean over a frame's cells, then the mean over the frames weighted by their
        presence weight (``p_weight``).

        ``map_loss_type='softmax'``: instead, on the labelled frames that are heard (not digitally silent) and have
        foreground, the cross-entropy of the softmax of the logits over the frame's cells (padding left out) against
        the mask's share of each cell, normalised to sum to 1; frames weighted by ``p_weight``. It is relative (a
        shift of every logit changes nothing), so it says where on the frame the sound is and leaves the level, the
        presence, to ``loss_presence``. Its value starts near ``log(cells)``, not near ``log(2)`` as the BCE."""
        pooled = F.adaptive_avg_pool2d(
            torch.stack([gt != self.ignore_index, self._foreground(gt)], 1).float(), pmap.shape[-2:]
        )
        cover = pooled[:, 0]
        cells = (cover > 0).float()
        heard = (weight > 0) & (sounding != 0)
        share = (pooled[:, 1] / cover.clamp(min=1e-6)).clamp(max=1.0) * heard[:, None, None].float()
        if self.presence_map_loss_type == 'softmax':
            # where on the frame the sound is: a cross-entropy of the softmax over the frame's cells (padding
            # left out) against the mask's distribution over them; relative, so the level of the match (the
            # presence) is left to loss_presence, and frames with nothing to find take no part
            mass = share.flatten(1).sum(1)
            value = F.cross_entropy(
                pmap.masked_fill(cells == 0, -1e4).flatten(1),
                share.flatten(1) / mass.clamp(min=1e-6)[:, None],
                reduction='none',
            )
            frame_weight = p_weight * (mass > 0).float()
        else:
            silent = ((weight > 0) & (sounding == 0)) | ((weight <= 0) & (p_weight > 0) & (target == 0))
            num_cells = cells.flatten(1).sum(1)
            value = F.binary_cross_entropy_with_logits(pmap, share, reduction='none')
            value = (value * cells).flatten(1).sum(1) / num_cells.clamp(min=1.0)
            frame_weight = p_weight * (heard | silent).float() * (num_cells > 0).float()
        return (value * frame_weight).sum() / frame_weight.sum().clamp(min=1.0)

    def _category_losses(
        self,
        head_out: HeadOutput,
        data_samples: Sequence[SegDataSample],
        num_frames: int,
        gt: Tensor,
        labelled: Tensor,
        heard: Tensor,
    ) -> Dict[str, Tensor]:
        """``loss_category_audio`` / ``loss_category_visual`` of the category head (:meth:`CategoryBridge.loss`)
        from the samples' metainfo ``category_index``; samples without one take no part (a warning says so once
        if no sample of a batch has one). ``labelled`` / ``heard``: (B*T,) bool."""
        index = [int(s.metainfo.get('category_index', -1)) for s in data_samples]
        if max(index) >= self.category_head.num_categories:
            raise ValueError(
                f'CCFormerHead: category_index {max(index)} >= category_head.num_categories='
                f'{self.category_head.num_categories}; raise decode_head.category_head.num_categories to at least '
                "the number of categories in the dataset's CSV."
            )
        if max(index) < 0 and not self._warned_no_category:
            self._warned_no_category = True
            print_log(
                'CCFormerHead: the head has a category_head but the data samples carry no category_index (only '
                'AVSBenchS4Dataset gives it); its category losses are 0 and it changes no prediction.',
                logger='current',
                level=logging.WARNING,
            )
        category = torch.tensor(index, device=gt.device).repeat_interleave(num_frames)
        loss_a, loss_v = self.category_head.loss(
            head_out.category_audio, head_out.category_visual, category, heard, (gt == 1).float(), labelled
        )
        return dict(
            loss_category_audio=self.category_loss_weight * loss_a,
            loss_category_visual=self.category_loss_weight * loss_v,
        )

    def _foreground(self, gt: Tensor) -> Tensor:
        """Where the ground truth has foreground (bool, gt's shape): the object (binary heads) or any class but
        background and ``ignore_index`` (semantic heads)."""
        return (gt == 1) if self.num_classes == 1 else (gt > 0) & (gt != self.ignore_index)

    def _presence_target(
        self, gt: Tensor, weight: Tensor, data_samples: Sequence[SegDataSample], num_frames: int
    ) -> tuple:
        """Presence targets and weights, and the metainfo ``sounding`` flags, all (B*T,) float.

        Labelled frames (``weight`` > 0): 1 where the GT has foreground.
        Other frames: metainfo ``sounding`` (1 / 0) where a sample gives it,
        else weight 0. The flags are -1 where a sample gives none.
        """
        target = self._foreground(gt).flatten(1).any(1)
        target = target.float()
        known = [-1] * (len(data_samples) * num_frames)
        for i, sample in enumerate(data_samples):
            sounding = sample.metainfo.get('sounding')
            if sounding is None:
                continue
            if len(sounding) != num_frames:
                raise ValueError(
                    f'CCFormerHead.loss: data_samples[{i}] metainfo sounding '
                    f'is {sounding!r}; it must list T={num_frames} flags '
                    '(1 sounding, 0 silent, -1 unknown).'
                )
            start = i * num_frames
            known[start : start + num_frames] = [int(v) for v in sounding]
        known = torch.tensor(known, dtype=torch.float32).to(gt.device)
        from_meta = (weight <= 0) & (known >= 0)
        target = torch.where(from_meta, known, target)
        p_weight = torch.where(from_meta, torch.ones_like(weight), weight)
        return target, p_weight, known

    def loss(
        self, x: EIMOutput, data_samples: Sequence[SegDataSample], train_cfg: Optional[ConfigType] = None
    ) -> Dict[str, Tensor]:
        """Deep-supervised segmentation losses.

        Args:
            x (EIMOutput): see :meth:`forward`.
            data_samples (list[SegDataSample]): B samples with
                ``gt_sem_seg.data`` (T, H, W) and metainfo ``gt_valid``.
            train_cfg (dict, optional): unused (mmseg's head signature).

        Returns:
            dict[str, Tensor]: ``loss_*`` of the last stage and
            ``d{i}.loss_*`` of the earlier stages.
        """
        return self.loss_by_feat(self.forward(x), data_samples)
