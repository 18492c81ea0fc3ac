"""Attention Query Generator of CCFormer (Sec. III-C, Table V)."""

from typing import Optional, Tuple

from mmengine.model import BaseModule, ModuleList
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..utils.attention import attn_cfg, ffn_cfg
from .layers import ConstCache, CrossSelfAttentionLayer, padding_mask, sine_embed_1d


class QueryGeneratorLayer(CrossSelfAttentionLayer):
    """One generator layer, post-norm: cross-attention from the audio queries
    to the enhanced audio, self-attention among a frame's N queries, FFN::

        Q' = LN(Q + CA(Q + pos_Q, A + pos_A, A))
        Q'' = LN(Q' + SA(Q' + pos_Q)),  Q''' = LN(Q'' + FFN(Q''))

    mmdet's Mask2Former decoder layer (:class:`CrossSelfAttentionLayer`);
    its forward is replaced because the self-attention runs per frame while
    the cross-attention runs per group of frames.
    """

    def forward(
        self,
        query: Tensor,
        query_pos: Tensor,
        audio: Tensor,
        audio_pos: Optional[Tensor],
        audio_mask: Optional[Tensor],
        num_queries: int,
    ) -> Tensor:
        """query (G, M*N, d) grouped so that the cross-attention of all M
        frames of a group (a clip, or one frame) runs in one call; audio
        (G, La, d). Self-attention runs per frame: (G*M, N, d)."""
        g, mn, d = query.shape
        query = self.norms[0](
            self.cross_attn(
                query, key=audio, value=audio, query_pos=query_pos, key_pos=audio_pos, key_padding_mask=audio_mask
            )
        )
        q = query.reshape(-1, num_queries, d)
        pos = query_pos.expand(g, -1, -1).reshape(-1, num_queries, d)
        q = self.norms[1](self.self_attn(q, query_pos=pos, key_pos=pos))
        q = self.norms[2](self.ffn(q))
        return q.reshape(g, mn, d)


@MODELS.register_module()
class AttentionQueryGenerator(BaseModule):
    """Attention Query Generator: N intra-frame queries per frame from audio.

    ``mode='attention'`` (the paper): N randomly initialised audio queries per
    frame go through ``num_layers`` layers of cross-attention to the enhanced
    audio, self-attention among the frame's queries and an FFN; the output
    plus N learnable query embeddings are the intra-frame queries.
    ``mode='repeat'`` (Table V): the frame's enhanced audio feature repeated
    N times, plus the learnable embeddings (without them the N queries would
    be identical). ``mode='none'`` (Table V): the learnable embeddings only.

    **audio_context.** ``'frame'`` (the configs): the queries of frame t
    attend to their own frame's single audio token, as the paper describes
    ("audio queries within each frame ... from sparse audio features") and
    as the authors' later code does (each frame's query generator input is
    that frame's audio feature alone; ``docs/design.md``, "Fidelity"). The
    softmax over one key is 1, so the cross-attention adds the same projected
    audio vector to every query of the frame; the self-attention and FFN,
    with the N query embeddings, make the queries differ. ``'clip'`` (the
    class default, and the ablation ``*-gen-clip-audio_*``): the queries of
    frame t attend to all T enhanced audio tokens of the clip; audio tokens
    and queries carry the sine embedding of their frame index, so the
    attention knows which audio belongs to the query's own frame and can also
    use the neighbouring seconds (padded frames are masked out). Both have
    the same parameters.

    Also owns the N learnable query position embeddings used by the decoder
    (reference points and positional queries, as in Deformable DETR).

    **[choice]** ``num_layers=3`` (the paper says "each layer" without a
    count; 3 as every other stack of the MTM: 3 encoder, 3 ICI, 3 ITI per
    ICI layer); each layer has 1.58 M parameters at d=256 with FFN 2048 and
    costs almost nothing (5 x N queries against T audio tokens: 0.035 G
    per 5-frame clip). The third layer also keeps the full model's
    trainable parameters within 10% of the paper's with the light stride-4
    FPN level (docs/model_size.md).

    Args:
        embed_dims (int): d.
        num_queries (int): N.
        num_layers (int): generator layers (mode 'attention').
        mode (str): 'attention' | 'repeat' | 'none'.
        audio_context (str): 'clip' | 'frame'.
        num_heads, feedforward_channels, attn_drop, proj_drop, ffn_drop:
            sizes and dropouts of each layer.
        attn_type (str): ``'MultiheadAttention'`` (mmcv, default) or
            ``'SDPAttention'``.
    """

    MODES = ('attention', 'repeat', 'none')
    CONTEXTS = ('clip', 'frame')

    def __init__(
        self,
        embed_dims: int = 256,
        num_queries: int = 5,
        num_layers: int = 3,
        mode: str = 'attention',
        audio_context: str = 'clip',
        num_heads: int = 8,
        feedforward_channels: int = 2048,
        attn_drop: float = 0.0,
        proj_drop: float = 0.1,
        ffn_drop: float = 0.1,
        attn_type: str = 'MultiheadAttention',
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if mode not in self.MODES:
            raise ValueError(f'AttentionQueryGenerator: mode={mode!r}; use one of {self.MODES} in the head config.')
        if audio_context not in self.CONTEXTS:
            raise ValueError(f'AttentionQueryGenerator: audio_context={audio_context!r}; use one of {self.CONTEXTS}.')
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.mode = mode
        self.audio_context = audio_context
        self.query_feat = nn.Embedding(num_queries, embed_dims)
        self.query_pos = nn.Embedding(num_queries, embed_dims)
        self._const = ConstCache()
        if mode == 'attention':
            self.audio_query = nn.Embedding(num_queries, embed_dims)
            attn = attn_cfg(embed_dims, num_heads, attn_drop, proj_drop, type=attn_type)
            self.layers = ModuleList(
                [
                    QueryGeneratorLayer(
                        self_attn_cfg=dict(attn),
                        cross_attn_cfg=dict(attn),
                        ffn_cfg=ffn_cfg(embed_dims, feedforward_channels, ffn_drop),
                    )
                    for _ in range(num_layers)
                ]
            )

    def _temporal(self, num_frames: int, audio: Tensor) -> Tensor:
        pos = self._const(
            ('t', num_frames, audio.device), lambda: sine_embed_1d(num_frames, self.embed_dims, audio.device)
        )
        return pos.to(audio.dtype)

    def _attend(self, audio: Tensor, frame_valid: Optional[Tensor]) -> Tensor:
        """Generator layers; audio (B, T, d) -> (B*T, N, d)."""
        b, t, d = audio.shape
        n = self.num_queries
        t_pos = self._temporal(t, audio)  # (T, d)
        if self.audio_context == 'clip':
            # queries grouped per clip: (B, T*N, d) against (B, T, d)
            query = self.audio_query.weight.repeat(t, 1)[None].expand(b, -1, -1)
            query_pos = (t_pos[:, None] + self.query_pos.weight.to(audio.dtype)).reshape(1, t * n, d)
            keys, key_pos = audio, t_pos[None]
            mask = padding_mask(frame_valid)
        else:
            # one group per frame: (B*T, N, d) against (B*T, 1, d)
            query = self.audio_query.weight[None].expand(b * t, -1, -1)
            query_pos = self.query_pos.weight.to(audio.dtype)[None]
            # the single key carries no position; a zero one, because mmcv's
            # attention would take the query's when its shape matched
            keys, mask = audio.reshape(b * t, 1, d), None
            key_pos = audio.new_zeros(1, 1, d)
        query = query.to(audio.dtype)
        for layer in self.layers:
            query = layer(query, query_pos, keys, key_pos, mask, n)
        return query.reshape(b * t, n, d)

    def forward(self, audio: Tensor, frame_valid: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Generate the intra-frame queries.

        Args:
            audio (Tensor): enhanced audio (B, T, d).
            frame_valid (Tensor | None): (B, T), nonzero for real frames.

        Returns:
            tuple: ``query`` (B*T, N, d) and ``query_pos`` (B*T, N, d).
        """
        b, t, d = audio.shape
        if d != self.embed_dims:
            raise ValueError(f'AttentionQueryGenerator: audio has {d} channels, expected embed_dims={self.embed_dims}.')
        n = self.num_queries
        feat = self.query_feat.weight.to(audio.dtype)[None]  # (1, N, d)
        if self.mode == 'attention':
            query = self._attend(audio, frame_valid) + feat
        elif self.mode == 'repeat':
            query = audio.reshape(b * t, 1, d) + feat
        else:
            query = feat.expand(b * t, n, d)
        query_pos = self.query_pos.weight.to(audio.dtype)[None].expand(b * t, n, d)
        return query, query_pos
