"""Multi-query Transformer Decoder of CCFormer (Sec. III-C, Eqs. 7-10)."""

import copy
from typing import List, Optional

import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseModule, ModuleList
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..utils.attention import attn_cfg, ffn_cfg
from .layers import ConstCache, ICILayer, ITILayer, padding_mask, sine_embed_1d


@MODELS.register_module()
class MultiQueryTransformerDecoder(BaseModule):
    """ICI layers, each followed by ITI layers, with deep-supervision outputs.

    The decoder runs ``num_stages`` stages. Stage s is: the ICI layer s (if
    ``s < num_ici_layers``) on all B*T frames at once, then
    ``num_iti_layers`` ITI layers on the B clips. N inter-frame queries per
    clip (randomly initialised embeddings) are carried through all ITI layers
    of all stages; the ITI also updates the intra-frame queries (Eq. 7),
    which go on to the next ICI layer. Each stage outputs the combined queries
    of Eq. 10: inter-frame queries repeated over T, combined with the
    intra-frame queries (``combine='sum'``: Q_intra + Q_inter;
    ``combine='gate'``: Q_intra + g * Q_inter with
    g = sigmoid(W [Q_intra; Q_inter])). **[choice]** sum by default.

    Ablations: ``num_ici_layers=0`` (w/o ICI: stages of ITI layers only; the
    paper's variant removes only the three ICI layers, 4.6 M, so the nine ITI
    layers stay: ``num_stages`` defaults to 3 then), ``num_iti_layers=0``
    (w/o ITI: no inter-frame queries, the stage output is the intra-frame
    queries). Tables VII/VIII vary the counts: set ``num_ici_layers`` (and
    ``num_stages`` follows) and ``num_iti_layers``.

    Reference points of the deformable cross-attention are
    ``sigmoid(Linear(query_pos))`` as in one-stage Deformable DETR.

    Args:
        embed_dims (int): d.
        num_queries (int): N.
        num_ici_layers (int): ICI layers (3).
        num_iti_layers (int): ITI layers after each stage's ICI layer (3).
        num_stages (int | None): stages; default ``num_ici_layers`` or 3 if
            that is 0. If given with ``num_ici_layers > 0`` it must equal it.
        ici_layer_cfg (dict): mmdet ``DeformableDetrTransformerDecoderLayer``
            config (``self_attn_cfg``, ``cross_attn_cfg`` (num_levels 3),
            ``ffn_cfg``).
        iti_layer_cfg (dict): :class:`ITILayer` kwargs.
        combine (str): 'sum' | 'gate'.
    """

    def __init__(
        self,
        embed_dims: int = 256,
        num_queries: int = 5,
        num_ici_layers: int = 3,
        num_iti_layers: int = 3,
        num_stages: Optional[int] = None,
        ici_layer_cfg: Optional[dict] = None,
        iti_layer_cfg: Optional[dict] = None,
        combine: str = 'sum',
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if combine not in ('sum', 'gate'):
            raise ValueError(f'MultiQueryTransformerDecoder: combine={combine!r}; use "sum" or "gate".')
        if num_ici_layers < 0 or num_iti_layers < 0:
            raise ValueError('MultiQueryTransformerDecoder: layer counts must be >= 0.')
        if num_ici_layers == 0 and num_iti_layers == 0:
            raise ValueError(
                'MultiQueryTransformerDecoder: num_ici_layers and '
                'num_iti_layers are both 0, the decoder would do '
                'nothing; keep at least one.'
            )
        if num_stages is None:
            num_stages = num_ici_layers if num_ici_layers > 0 else 3
        if num_ici_layers > 0 and num_stages != num_ici_layers:
            raise ValueError(
                f'MultiQueryTransformerDecoder: num_stages='
                f'{num_stages} but num_ici_layers='
                f'{num_ici_layers}; with ICI layers each stage '
                f'has one, so drop num_stages from the config.'
            )
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.num_ici_layers = num_ici_layers
        self.num_iti_layers = num_iti_layers
        self.num_stages = num_stages
        self.combine = combine
        ici_cfg = ConfigDict(copy.deepcopy(ici_layer_cfg or {}))
        ici_cfg.setdefault('self_attn_cfg', attn_cfg(embed_dims, num_heads=8, attn_drop=0.0, proj_drop=0.1))
        ici_cfg.setdefault(
            'cross_attn_cfg',
            dict(
                embed_dims=embed_dims,
                num_heads=8,
                num_levels=3,
                num_points=4,
                dropout=0.1,
                batch_first=True,
                im2col_step=128,
            ),
        )
        ici_cfg.setdefault('ffn_cfg', ffn_cfg(embed_dims, 2048, ffn_drop=0.1))
        self.ici_layers = ModuleList([ICILayer(**copy.deepcopy(ici_cfg)) for _ in range(num_ici_layers)])
        iti_cfg = dict(embed_dims=embed_dims)
        iti_cfg.update(iti_layer_cfg or {})
        self.iti_layers = ModuleList([ITILayer(**iti_cfg) for _ in range(num_stages * num_iti_layers)])
        if num_ici_layers > 0:
            self.ref_point_head = nn.Linear(embed_dims, 2)
        if num_iti_layers > 0:
            self.inter_query = nn.Embedding(num_queries, embed_dims)
            self.inter_pos = nn.Embedding(num_queries, embed_dims)
            if combine == 'gate':
                self.gate = nn.Linear(2 * embed_dims, embed_dims)
        self._const = ConstCache()

    def _combine(self, intra: Tensor, inter: Tensor, num_frames: int) -> Tensor:
        """Eq. 10. intra (B*T, N, d), inter (B, N, d) -> (B*T, N, d)."""
        b, n, d = inter.shape
        inter = inter[:, None].expand(b, num_frames, n, d).reshape(-1, n, d)
        if self.combine == 'sum':
            return intra + inter
        gate = torch.sigmoid(self.gate(torch.cat([intra, inter], dim=-1)))
        return intra + gate * inter

    def forward(
        self,
        query: Tensor,
        query_pos: Tensor,
        memory: Tensor,
        num_frames: int,
        frame_valid: Optional[Tensor] = None,
        **levels,
    ) -> List[Tensor]:
        """Run all stages.

        Args:
            query (Tensor): intra-frame queries (B*T, N, d).
            query_pos (Tensor): their positions (B*T, N, d).
            memory (Tensor): encoder memory (B*T, L, d), L over strides
                8/16/32.
            num_frames (int): T.
            frame_valid (Tensor | None): (B, T).
            **levels: the memory's level description for the deformable
                attention (``CCFormerHead._encode``): ``spatial_shapes``
                (3, 2) long (h, w), ``level_start_index`` (3,), and
                optionally ``offset_normalizer`` and ``spatial_shapes_list``
                (see ``MSDeformAttn``).

        Returns:
            list[Tensor]: per stage, combined queries (B*T, N, d).
        """
        bt, n, d = query.shape
        b = bt // num_frames
        outs = []
        if self.num_ici_layers > 0:
            num_levels = levels['spatial_shapes'].shape[0]
            ref = self.ref_point_head(query_pos).sigmoid()
            ref = ref[:, :, None, :].expand(-1, -1, num_levels, -1)
        if self.num_iti_layers > 0:
            t_pos = self._const(('t', num_frames, query.device), lambda: sine_embed_1d(num_frames, d, query.device))
            intra_pos = (query_pos.reshape(b, num_frames, n, d) + t_pos.to(query.dtype)[None, :, None]).reshape(
                b, num_frames * n, d
            )
            inter = self.inter_query.weight.to(query.dtype)[None].expand(b, n, d)
            inter_pos = self.inter_pos.weight.to(query.dtype)[None]
            mask = padding_mask(frame_valid, n)
        for s in range(self.num_stages):
            if s < self.num_ici_layers:
                query = self.ici_layers[s](
                    query, query_pos=query_pos, value=memory, key_padding_mask=None, reference_points=ref, **levels
                )
            if self.num_iti_layers == 0:
                outs.append(query)
                continue
            intra = query.reshape(b, num_frames * n, d)
            for j in range(self.num_iti_layers):
                layer = self.iti_layers[s * self.num_iti_layers + j]
                intra, inter = layer(intra, inter, intra_pos, inter_pos, mask)
            query = intra.reshape(bt, n, d)
            outs.append(self._combine(query, inter, num_frames))
        return outs
