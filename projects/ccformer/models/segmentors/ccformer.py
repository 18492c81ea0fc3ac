"""CCFormer segmentor (Gong et al., TMM 2025, Fig. 2): encoders -> EIM -> MTM head (+ BCL when training).

Data flow (docs/design.md "The model"; B clips, T frames, d = 256):

1. ``backbone(frames.flatten(0, 1))`` -> 4 maps ``(B*T, C_i, H/s_i, W/s_i)``, s = 4, 8, 16, 32.
2. ``audio_encoder(audio.flatten(0, 1))`` (VGGish, frozen) -> ``(B*T, 128)``, zeroed on padded frames.
3. ``neck`` (EIM) -> :class:`~projects.ccformer.models.utils.EIMOutput` (``feats``, ``feats_orig``, ``audio``,
   ``audio_orig``, ``frame_valid``).
4. ``decode_head`` (CCFormerHead): ``forward(x)`` -> :class:`~projects.ccformer.models.utils.HeadOutput`
   (``stage_logits``: ``(B*T, K, H/4, W/4)`` per decoder stage; ``presence``: ``(B*T,)`` or None);
   ``loss_by_feat(head_out, data_samples)``; ``predict(x)`` -> the last stage's logits, gated by the presence.
5. ``predict`` upsamples to the input size, crops padding, undoes flips, resizes to ``ori_shape``; K = 1:
   ``seg_logits (T, H, W)`` and ``pred = sigmoid > decode_head.threshold``; K > 1: ``pred = argmax`` with padded
   frames forced to 0. With ``empty_when_silent``, frames whose audio is digital silence are emptied before that
   (step 4, inside the tensor core, so exported models do it too).

Training adds ``lambda * BCL`` (``bcl_loss``, lambda = 0.1) on the EIM output unless ``use_bcl=False``; frames whose
audio a negative-audio wrapper replaced (metainfo ``audio_replaced``) are left out of BCL.

Steps 1-4 are one tensor-only function, :meth:`CCFormer._core`, which ``compile_cfg`` hands to ``torch.compile``
(:mod:`projects.ccformer.models.utils.compile`): the data samples, the losses' target building and the
post-processing stay eager, so the compiled graph neither guards on per-clip metainfo nor recompiles per batch.
"""

import math
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import add_prefix
from torch import Tensor

from ...datasets.audio import silent_examples
from ..decode_heads.ccformer_head import CCFormerHead
from ..utils import EIMOutput, HeadOutput, convert_ccformer_keys, frame_flags
from ..utils.compile import CompiledCore, uses_cuda_graphs


def _pretrained_paths(cfg) -> List[str]:
    """Local checkpoint paths of ``Pretrained`` entries in an ``init_cfg`` (dict or list)."""
    cfgs = cfg if isinstance(cfg, (list, tuple)) else [cfg]
    return [
        c['checkpoint']
        for c in cfgs
        if isinstance(c, dict)
        and c.get('type') == 'Pretrained'
        and isinstance(c.get('checkpoint'), str)
        and '://' not in c['checkpoint']
    ]


# the mask logit of a frame emptied by ``empty_when_silent`` (finite, so resizing keeps it; fits float16)
SILENT_LOGIT = 1e4


@MODELS.register_module()
class CCFormer(BaseSegmentor):
    """Audio-visual segmentor for clips of T frames.

    Args:
        backbone (dict): visual backbone (e.g. ``TimmPyramidBackbone`` pvt_v2_b5, ``mmdet.ResNet`` depth 50).
        audio_encoder (dict): ``VGGish``.
        neck (dict): ``EIM``.
        decode_head (dict): ``CCFormerHead``.
        bcl_loss (dict, optional): ``BiModalContrastiveLoss``; built only when ``use_bcl``.
        use_bcl (bool): add BCL to the training loss ("w/o BCL" ablation when False). Default True.
        train_cfg, test_cfg (dict, optional): unused (kept for mmseg compatibility).
        pretrained (str, optional): a checkpoint for the visual backbone, as mmseg's ``EncoderDecoder`` takes it
            (``Pretrained`` ``init_cfg`` of the backbone); ``mmseg.apis.init_model`` passes None.
        data_preprocessor (dict): ``AVSDataPreprocessor``.
        align_corners (bool): for the upsampling of logits. Default False.
        compile_cfg (bool | dict, optional): ``torch.compile`` the encoders + EIM + head (:meth:`_core`) with these
            keyword arguments (``True``: defaults), e.g. ``dict(mode='reduce-overhead')`` for inductor + CUDA
            graphs, ``dict(backend='cudagraphs')`` for CUDA graphs of the eager kernels (no code generation, so
            it compiles in seconds, not minutes); ``dynamic=False`` unless given. For training, CUDA-graph modes
            need one optimizer step per forward (no gradient accumulation: a replay would overwrite the gradients
            accumulated so far; ``tools/train.py`` refuses the combination); ``dict()`` (inductor, no CUDA graphs)
            has no such limit. The first call per input
            signature runs eagerly (it caches the head's shape constants outside the graph). Default None (eager).
        empty_when_silent (bool): at inference, a frame whose audio example is digital silence
            (:func:`~projects.ccformer.datasets.audio.silent_examples`, the rule that also gives such frames the
            presence target 0 in training) gets an empty mask (K = 1: every logit ``-SILENT_LOGIT``, as the model's
            dtype holds it, or below; K > 1: background everywhere), whatever the model predicts: nothing can be
            heard, so nothing on screen sounds. Training is unchanged. Default False (the paper's recipe); the robust
            configs set it.

    Shapes:
        inputs ``(N, T, 3, H, W)``; audio ``(N, T, 1, 96, 64)``; ``mode='tensor'`` returns ``(N, T, K, H, W)``.
    """

    def __init__(
        self,
        backbone: dict,
        audio_encoder: dict,
        neck: dict,
        decode_head: dict,
        bcl_loss: Optional[dict] = None,
        use_bcl: bool = True,
        train_cfg: Optional[dict] = None,
        test_cfg: Optional[dict] = None,
        data_preprocessor: Optional[dict] = None,
        align_corners: bool = False,
        compile_cfg: Union[bool, dict, None] = None,
        empty_when_silent: bool = False,
        pretrained: Optional[str] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if pretrained is not None:
            backbone = dict(backbone, init_cfg=dict(type='Pretrained', checkpoint=pretrained))
        self.backbone = MODELS.build(backbone)
        self.audio_encoder = MODELS.build(audio_encoder)
        self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        self.use_bcl = use_bcl and bcl_loss is not None
        self.bcl_loss = MODELS.build(bcl_loss) if self.use_bcl else None
        self.train_cfg, self.test_cfg = train_cfg, test_cfg
        self.align_corners = align_corners
        self.compile_cfg = compile_cfg
        self.empty_when_silent = bool(empty_when_silent)
        # checkpoints of the earlier parameter layout load as they are
        self._register_load_state_dict_pre_hook(_convert_earlier_layout)

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """Fail early, with the fix, when a configured local pretrained checkpoint is missing."""
        for name, module in self.named_modules():
            for path in _pretrained_paths(getattr(module, 'init_cfg', None)):
                if not osp.isfile(path):
                    raise FileNotFoundError(
                        f'CCFormer: pretrained checkpoint "{path}" for {name or "model"} '
                        f'({type(module).__name__}) not found (cwd: {osp.abspath(".")}). Download it as the '
                        f'README section "Pretrained weights" says and put it there, or point the config '
                        f'(model.{name}.init_cfg.checkpoint) at it; init_cfg=None trains from scratch.'
                    )
        super().init_weights()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_inputs(inputs: Tensor, audio: Optional[Tensor]) -> None:
        if inputs.dim() != 5:
            raise ValueError(
                f'CCFormer expects frames of shape (N, T, C, H, W), got {tuple(inputs.shape)}; '
                f'use AVSDataPreprocessor (model.data_preprocessor) to batch clips'
            )
        if audio is None:
            raise ValueError(
                'CCFormer needs the clips\' audio: forward(inputs, data_samples, mode, audio=...) with '
                'audio of shape (N, T, 1, 96, 64) (AVSDataPreprocessor returns it under "audio")'
            )
        if tuple(audio.shape[:2]) != tuple(inputs.shape[:2]):
            raise ValueError(
                f'CCFormer: audio {tuple(audio.shape)} and frames {tuple(inputs.shape)} must agree on (N, T)'
            )

    @staticmethod
    def frame_valid_from_samples(
        data_samples: Optional[Sequence[SegDataSample]], num_frames: int, device: torch.device
    ) -> Optional[Tensor]:
        """(N, T) bool mask from the samples' ``frame_valid`` metainfo; None when every frame is real (keeps the
        attention kernels mask-free for S4 / MS3). See :func:`~projects.ccformer.models.utils.frame_flags`."""
        return frame_flags(data_samples, 'frame_valid', num_frames, device)

    def extract_feat(
        self, inputs: Tensor, audio: Optional[Tensor] = None, frame_valid: Optional[Tensor] = None
    ) -> EIMOutput:
        """Encoders + EIM. inputs (N, T, 3, H, W), audio (N, T, 1, 96, 64) -> :class:`EIMOutput`."""
        self._check_inputs(inputs, audio)
        return self._extract(inputs, audio, frame_valid)

    def _extract(self, inputs: Tensor, audio: Tensor, frame_valid: Optional[Tensor]) -> EIMOutput:
        n, t = inputs.shape[:2]
        feats = self.backbone(inputs.flatten(0, 1))
        audio_feat = self.audio_encoder(audio.flatten(0, 1))  # (N*T, 128)
        if frame_valid is not None:
            audio_feat = audio_feat * frame_valid.reshape(-1, 1).to(audio_feat.dtype)
        return self.neck(list(feats), audio_feat, t, frame_valid)

    # ------------------------------------------------------------------ compiled core
    @property
    def compile_cfg(self) -> Optional[dict]:
        """The ``torch.compile`` arguments of the tensor core (None: eager). Setting it (also to None) normalises
        the value and forgets which input signatures already ran, so the next call per signature runs eagerly."""
        return self._compiled_core.kwargs

    @compile_cfg.setter
    def compile_cfg(self, value: Union[bool, dict, None]) -> None:
        self._compiled_core = CompiledCore(CCFormer._core, value)

    uses_cuda_graphs = staticmethod(uses_cuda_graphs)

    def _param_dtype(self) -> torch.dtype:
        for param in self.backbone.parameters():
            return param.dtype
        return torch.float32

    def _core(
        self, inputs: Tensor, audio: Tensor, frame_valid: Optional[Tensor], all_stages: bool
    ) -> Tuple[EIMOutput, Union[Tensor, HeadOutput]]:
        """Encoders + EIM + head (steps 1-4), tensors only.

        Returns:
            tuple: the :class:`EIMOutput` and, when ``all_stages`` (training), the head's :class:`HeadOutput`
            (``stage_logits`` ``(N*T, K, H/4, W/4)`` per decoder stage, ``presence`` ``(N*T,)`` or None), else the
            last stage's gated logits ``(N*T, K, H/4, W/4)``.
        """
        heard = audio  # as given (float32 from the data preprocessor): the silence rule reads it before any cast
        x = self._extract(inputs, audio.to(inputs.dtype), frame_valid)
        if all_stages:
            return x, self.decode_head.forward(x)
        logits = self.decode_head.predict(x)
        if self.empty_when_silent:
            logits = self.empty_silent_frames(logits, heard)
        return x, logits

    @staticmethod
    def empty_silent_frames(logits: Tensor, audio: Tensor) -> Tensor:
        """Empty the masks of frames whose audio is digital silence (``empty_when_silent``).

        logits ``(N*T, K, h, w)``, audio ``(N, T, 1, 96, 64)`` -> ``(N*T, K, h, w)``: the head's presence gate
        (:meth:`CCFormerHead.gate`) with the logit ``-SILENT_LOGIT`` on silent frames; other frames unchanged. The
        rule reads the audio in float32 (in bfloat16 the floor ``log(0.01)`` and the rule's margin above it round to
        one value).
        """
        silent = silent_examples(audio.float()).reshape(-1, 1, 1, 1)  # (N*T, 1, 1, 1)
        floor = torch.full_like(logits[:, :1, :1, :1], -SILENT_LOGIT)
        return torch.where(silent, CCFormerHead.gate(logits, floor), logits)

    def run_core(
        self, inputs: Tensor, audio: Optional[Tensor], frame_valid: Optional[Tensor], all_stages: bool
    ) -> Tuple[EIMOutput, Union[Tensor, HeadOutput]]:
        """:meth:`_core`, compiled when ``compile_cfg`` is set (inputs are checked eagerly first).

        Inputs are cast to the dtype of the model's parameters (the audio inside :meth:`_core`, after the
        ``empty_when_silent`` rule has read it), so a model cast with ``model.to(torch.bfloat16)`` (bf16 weights: no
        per-op autocast casts) takes the data preprocessor's float32 batches.
        """
        self._check_inputs(inputs, audio)
        inputs = inputs.to(self._param_dtype())  # a no-op when the dtypes already match
        signature = (
            tuple(inputs.shape),
            inputs.dtype,
            audio.dtype,
            inputs.device,
            frame_valid is None,
            all_stages,
            torch.is_grad_enabled(),
            torch.is_autocast_enabled(inputs.device.type),
        )
        return self._compiled_core(self, inputs, audio, frame_valid, all_stages, signature=signature)

    def _core_logits_at(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """Logits returned by :meth:`run_core` resized to ``size``: a new tensor also when no resize is needed
        and CUDA graphs are used (their outputs are overwritten by the next replay)."""
        out = self._resize_logits(logits, size)
        if out is logits and self._compiled_core.uses_cuda_graphs:
            out = out.clone()
        return out

    def _resize_logits(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return resize(logits, size=tuple(size), mode='bilinear', align_corners=self.align_corners)

    # ------------------------------------------------------------------ BaseSegmentor API
    def encode_decode(
        self, inputs: Tensor, batch_img_metas: Optional[List[dict]] = None, audio: Optional[Tensor] = None
    ) -> Tensor:
        """Final logits at the input size: (N, T, 3, H, W) -> (N*T, K, H, W)."""
        frame_valid = self.frame_valid_from_samples(
            [SegDataSample(metainfo=m) for m in batch_img_metas] if batch_img_metas else None,
            inputs.shape[1],
            inputs.device,
        )
        _, logits = self.run_core(inputs, audio, frame_valid, all_stages=False)
        return self._core_logits_at(logits, inputs.shape[-2:])

    def forward(
        self,
        inputs: Tensor,
        data_samples: Optional[List[SegDataSample]] = None,
        mode: str = 'tensor',
        audio: Optional[Tensor] = None,
    ):
        """mode 'loss' -> dict of losses; 'predict' -> list of SegDataSample; 'tensor' -> (N, T, K, H, W)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples, audio=audio)
        if mode == 'predict':
            return self.predict(inputs, data_samples, audio=audio)
        if mode == 'tensor':
            return self._forward(inputs, data_samples, audio=audio)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, predict and tensor mode')

    def loss(self, inputs: Tensor, data_samples: List[SegDataSample], audio: Optional[Tensor] = None) -> dict:
        """Head losses (prefixed ``decode.``) + ``loss_bcl``."""
        if not data_samples:
            raise ValueError('CCFormer.loss needs data_samples with gt_sem_seg')
        t = inputs.shape[1]
        frame_valid = self.frame_valid_from_samples(data_samples, t, inputs.device)
        x, head_out = self.run_core(inputs, audio, frame_valid, all_stages=True)
        losses = add_prefix(self.decode_head.loss_by_feat(head_out, data_samples), 'decode')
        if self.use_bcl:
            losses[self.bcl_loss.loss_name] = self.bcl_loss(self._bcl_input(x, data_samples))
        return losses

    @staticmethod
    def _bcl_input(x: EIMOutput, data_samples: Sequence[SegDataSample]) -> EIMOutput:
        """The EIM output for BCL, with frames whose audio was replaced (metainfo ``audio_replaced``, negative-audio
        training) masked out like padded frames: their sound is not their frame's, and silence or noise is
        the same sound in every clip, so as anchors or keys they would only be false pairs."""
        replaced = frame_flags(data_samples, 'audio_replaced', x.num_frames, x.audio_orig.device, default=0)
        if replaced is None:
            return x
        keep = ~replaced
        return x._replace(frame_valid=keep if x.frame_valid is None else keep & x.frame_valid.bool())

    def predict(
        self, inputs: Tensor, data_samples: Optional[List[SegDataSample]] = None, audio: Optional[Tensor] = None
    ) -> List[SegDataSample]:
        """Per-clip predictions at ``ori_shape`` (see module docstring, step 5)."""
        n, t = inputs.shape[:2]
        frame_valid = self.frame_valid_from_samples(data_samples, t, inputs.device)
        _, logits = self.run_core(inputs, audio, frame_valid, all_stages=False)
        logits = self._core_logits_at(logits, inputs.shape[-2:])
        return self.postprocess_result(logits.view(n, t, *logits.shape[1:]), data_samples)

    def _forward(
        self, inputs: Tensor, data_samples: Optional[List[SegDataSample]] = None, audio: Optional[Tensor] = None
    ) -> Tensor:
        """Final logits ``(N, T, K, H, W)`` at the input size; works without data_samples."""
        n, t = inputs.shape[:2]
        frame_valid = self.frame_valid_from_samples(data_samples, t, inputs.device)
        # last stage only (no masks of the earlier stages)
        _, logits = self.run_core(inputs, audio, frame_valid, all_stages=False)
        out = self._core_logits_at(logits, inputs.shape[-2:])
        return out.view(n, t, *out.shape[1:])

    @property
    def logit_threshold(self) -> float:
        """``decode_head.threshold`` (a probability) as a logit: ``sigmoid(x) > p <=> x > log(p / (1 - p))``,
        exactly 0 for p = 0.5."""
        p = float(getattr(self.decode_head, 'threshold', 0.5))
        if not 0.0 < p < 1.0:
            raise ValueError(f'CCFormer: decode_head.threshold must be in (0, 1), got {p}')
        return math.log(p / (1.0 - p))

    def postprocess_result(
        self, seg_logits: Tensor, data_samples: Optional[List[SegDataSample]] = None
    ) -> List[SegDataSample]:
        """(N, T, K, H, W) logits -> SegDataSamples with ``pred_sem_seg`` (T, h, w) (+ ``seg_logits`` if K = 1).

        Per clip: crop the padding (to ``img_shape``), undo the flip, resize to ``ori_shape``.
        """
        n, t, k = seg_logits.shape[:3]
        seg_logits = seg_logits.float()  # bf16 / fp16 models: metrics and numpy need float32
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(n)]
        for i, ds in enumerate(data_samples):
            meta = ds.metainfo
            x = seg_logits[i]  # (T, K, H, W)
            img_h, img_w = meta.get('img_shape', x.shape[-2:])[:2]
            x = x[..., :img_h, :img_w]
            if meta.get('flip', False):
                direction = meta.get('flip_direction', 'horizontal')
                if direction not in ('horizontal', 'vertical'):
                    raise ValueError(f'CCFormer: unsupported flip_direction {direction!r} in data sample metainfo')
                x = x.flip(dims=(-1,) if direction == 'horizontal' else (-2,))
            if 'ori_shape' in meta:
                x = self._resize_logits(x, meta['ori_shape'][:2])
            if k == 1:
                logits = x[:, 0]  # (T, H, W)
                pred = (logits > self.logit_threshold).long()
                ds.set_data(dict(seg_logits=PixelData(data=logits), pred_sem_seg=PixelData(data=pred)))
            else:
                pred = x.argmax(dim=1)  # (T, H, W)
                valid = meta.get('frame_valid')
                if valid is not None and not all(valid):
                    keep = torch.tensor(valid, dtype=torch.bool).to(pred.device, non_blocking=True)
                    pred = pred * keep[:, None, None]
                ds.set_data(dict(pred_sem_seg=PixelData(data=pred)))
        return data_samples


def _convert_earlier_layout(state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` pre-hook: rename keys of the earlier layout (:mod:`..utils.key_conversion`)."""
    convert_ccformer_keys(state_dict, prefix)
