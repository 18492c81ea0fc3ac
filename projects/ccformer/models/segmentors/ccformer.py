"""CCFormer segmentor (Gong et al., TMM 2025, Fig. 2): encoders -> EIM -> MTM head (+ BCL when training).

Data flow (design.md "The model"; B clips, T frames, d = 256):

1. ``backbone(frames.flatten(0, 1))`` -> 4 maps ``(B*T, C_i, H/s_i, W/s_i)``, s = 4, 8, 16, 32.
2. ``audio_encoder(audio.flatten(0, 1))`` (VGGish, frozen) -> ``(B*T, 128)``, zeroed on padded frames.
3. ``neck`` (EIM) -> dict(feats, feats_orig, audio, audio_orig, frame_valid).
4. ``decode_head`` (CCFormerHead): ``forward(neck_out, T)`` -> list of ``(B*T, K, H/4, W/4)`` logits per decoder
   layer; ``loss(neck_out, data_samples, T)``; ``predict(neck_out, T)`` -> last logits.
5. ``predict`` upsamples to the input size, crops padding, undoes flips, resizes to ``ori_shape``; K = 1:
   ``seg_logits (T, H, W)`` and ``pred = sigmoid > 0.5``; K > 1: ``pred = argmax`` with padded frames forced to 0.

Training adds ``lambda * BCL`` (``bcl_loss``, lambda = 0.1) on the EIM outputs unless ``use_bcl=False``; frames whose
audio a negative-audio wrapper replaced (metainfo ``audio_replaced``) are left out of BCL.

Steps 1-4 are one tensor-only function, :meth:`CCFormer._core`, which ``compile_cfg`` hands to ``torch.compile``
(issue 5): the data samples, the losses' target building and the post-processing stay eager, so the compiled graph
neither guards on per-clip metainfo nor recompiles per batch (mmengine's ``cfg.compile`` compiles ``train_step``,
data preprocessing included, and recompiles when metainfo changes).
"""
import logging
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.structures import PixelData
from torch import Tensor

from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import add_prefix


def _pretrained_paths(cfg) -> List[str]:
    """Local checkpoint paths of ``Pretrained`` entries in an ``init_cfg`` (dict or list)."""
    cfgs = cfg if isinstance(cfg, (list, tuple)) else [cfg]
    return [c['checkpoint'] for c in cfgs
            if isinstance(c, dict) and c.get('type') == 'Pretrained' and isinstance(c.get('checkpoint'), str)
            and '://' not in c['checkpoint']]


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

    Shapes:
        inputs ``(N, T, 3, H, W)``; audio ``(N, T, 1, 96, 64)``; ``mode='tensor'`` returns ``(N, T, K, H, W)``.
    """

    def __init__(self,
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
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.audio_encoder = MODELS.build(audio_encoder)
        self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        self.use_bcl = use_bcl and bcl_loss is not None
        self.bcl_loss = MODELS.build(bcl_loss) if self.use_bcl else None
        self.train_cfg, self.test_cfg = train_cfg, test_cfg
        self.align_corners = align_corners
        self.compile_cfg = compile_cfg

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
                        f'(model.{name}.init_cfg.checkpoint) at it; init_cfg=None trains from scratch.')
        super().init_weights()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_inputs(inputs: Tensor, audio: Optional[Tensor]) -> None:
        if inputs.dim() != 5:
            raise ValueError(f'CCFormer expects frames of shape (N, T, C, H, W), got {tuple(inputs.shape)}; '
                             f'use AVSDataPreprocessor (model.data_preprocessor) to batch clips')
        if audio is None:
            raise ValueError('CCFormer needs the clips\' audio: forward(inputs, data_samples, mode, audio=...) with '
                             'audio of shape (N, T, 1, 96, 64) (AVSDataPreprocessor returns it under "audio")')
        if tuple(audio.shape[:2]) != tuple(inputs.shape[:2]):
            raise ValueError(f'CCFormer: audio {tuple(audio.shape)} and frames {tuple(inputs.shape)} must agree '
                             f'on (N, T)')

    @staticmethod
    def frame_valid_from_samples(data_samples: Optional[Sequence[SegDataSample]], num_frames: int,
                                 device: torch.device) -> Optional[Tensor]:
        """(N, T) bool mask from the samples' ``frame_valid`` metainfo; None when every frame is real.

        Built from host lists (no device sync); None keeps the attention kernels mask-free for S4 / MS3.
        """
        if not data_samples:
            return None
        rows = [list(ds.metainfo.get('frame_valid', [1] * num_frames)) for ds in data_samples]
        if any(len(r) != num_frames for r in rows):
            raise ValueError(f'CCFormer: frame_valid metainfo length differs from the clip length {num_frames}')
        if all(all(r) for r in rows):
            return None
        mask = torch.tensor(rows, dtype=torch.bool)
        if device.type == 'cuda':
            return mask.pin_memory().to(device, non_blocking=True)
        return mask.to(device)

    def extract_feat(self, inputs: Tensor, audio: Optional[Tensor] = None,
                     frame_valid: Optional[Tensor] = None) -> Dict:
        """Encoders + EIM. inputs (N, T, 3, H, W), audio (N, T, 1, 96, 64) -> EIM output dict."""
        self._check_inputs(inputs, audio)
        n, t = inputs.shape[:2]
        feats = self.backbone(inputs.flatten(0, 1))
        audio_feat = self.audio_encoder(audio.flatten(0, 1))                # (N*T, 128)
        if frame_valid is not None:
            audio_feat = audio_feat * frame_valid.reshape(-1, 1).to(audio_feat.dtype)
        return self.neck(list(feats), audio_feat, t, frame_valid)

    # ------------------------------------------------------------------ compiled core
    @property
    def compile_cfg(self) -> Optional[dict]:
        """The ``torch.compile`` arguments of the tensor core (None: eager). Setting it (also to None) normalises
        the value and forgets which input signatures already ran, so the next call per signature runs eagerly."""
        return self._compile_cfg

    @compile_cfg.setter
    def compile_cfg(self, value: Union[bool, dict, None]) -> None:
        self._compile_cfg = self._compile_kwargs(value)
        self._core_signatures: set = set()

    @staticmethod
    def _compile_kwargs(compile_cfg: Union[bool, dict, None]) -> Optional[dict]:
        if compile_cfg is None or compile_cfg is False:
            return None
        if compile_cfg is True:
            compile_cfg = {}
        if not isinstance(compile_cfg, dict):
            raise TypeError(f'CCFormer: compile_cfg must be None, a bool or a dict of torch.compile arguments, '
                            f'got {type(compile_cfg).__name__}')
        kwargs = dict(compile_cfg)
        # static shapes: train (N=2) and val (N=4, a partial last batch) get their own specialised graphs instead
        # of dynamo's automatic switch to one dynamic-shape graph (slower kernels, CUDA graphs re-recorded per size)
        kwargs.setdefault('dynamic', False)
        return kwargs

    @staticmethod
    def uses_cuda_graphs(compile_cfg: Optional[dict]) -> bool:
        """Whether ``compile_cfg`` records CUDA graphs (inductor's reduce-overhead / max-autotune modes or the
        cudagraphs backend): their outputs live in a memory pool that the next replay overwrites."""
        return bool(compile_cfg) and (compile_cfg.get('mode') in ('reduce-overhead', 'max-autotune')
                                      or compile_cfg.get('backend') == 'cudagraphs')

    def _param_dtype(self) -> torch.dtype:
        for param in self.backbone.parameters():
            return param.dtype
        return torch.float32

    def _core(self, inputs: Tensor, audio: Tensor, frame_valid: Optional[Tensor],
              all_stages: bool) -> Tuple[Dict, Union[Tensor, List[Tensor]]]:
        """Encoders + EIM + head (steps 1-4), tensors only.

        Returns:
            tuple: the EIM output dict and the head's logits at H/4: a list with ``(N*T, K, H/4, W/4)`` per
            decoder stage when ``all_stages`` (training), else the last stage's ``(N*T, K, H/4, W/4)``.
        """
        t = inputs.shape[1]
        neck_out = self.extract_feat(inputs, audio, frame_valid)
        if all_stages:
            return neck_out, self.decode_head.forward(neck_out, t)
        return neck_out, self.decode_head.predict(neck_out, t)

    def run_core(self, inputs: Tensor, audio: Optional[Tensor], frame_valid: Optional[Tensor],
                 all_stages: bool) -> Tuple[Dict, Union[Tensor, List[Tensor]]]:
        """:meth:`_core`, compiled when ``compile_cfg`` is set (inputs are checked eagerly first).

        Inputs are cast to the dtype of the model's parameters, so a model cast with ``model.to(torch.bfloat16)``
        (bf16 weights: no per-op autocast casts) takes the data preprocessor's float32 batches.
        """
        self._check_inputs(inputs, audio)
        dtype = self._param_dtype()
        inputs, audio = inputs.to(dtype), audio.to(dtype)  # no-ops when the dtypes already match
        if self.compile_cfg is None:
            return self._core(inputs, audio, frame_valid, all_stages)
        signature = (tuple(inputs.shape), inputs.dtype, inputs.device, frame_valid is None, all_stages,
                     torch.is_grad_enabled(), torch.is_autocast_enabled(inputs.device.type))
        if signature not in self._core_signatures:  # eager once: shape constants are cached outside the graph
            self._core_signatures.add(signature)
            print_log(f'CCFormer: compile_cfg={self.compile_cfg}: input {tuple(inputs.shape)} '
                      f'({"training" if torch.is_grad_enabled() else "inference"}) runs eagerly once, then '
                      'compiles on its next call (seconds to minutes)', logger='current', level=logging.INFO)
            return self._core(inputs, audio, frame_valid, all_stages)
        compiled = _compiled_core(self.compile_cfg)
        if self.uses_cuda_graphs(self.compile_cfg):
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: the last replay's outputs are done
        return compiled(self, inputs, audio, frame_valid, all_stages)

    def _core_logits_at(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """Logits returned by :meth:`run_core` resized to ``size``: a new tensor also when no resize is needed
        and CUDA graphs are used (their outputs are overwritten by the next replay)."""
        out = self._resize_logits(logits, size)
        if out is logits and self.uses_cuda_graphs(self.compile_cfg):
            out = out.clone()
        return out

    def _resize_logits(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return resize(logits, size=tuple(size), mode='bilinear', align_corners=self.align_corners)

    # ------------------------------------------------------------------ BaseSegmentor API
    def encode_decode(self, inputs: Tensor, batch_img_metas: Optional[List[dict]] = None,
                      audio: Optional[Tensor] = None) -> Tensor:
        """Final logits at the input size: (N, T, 3, H, W) -> (N*T, K, H, W)."""
        frame_valid = self.frame_valid_from_samples(
            [SegDataSample(metainfo=m) for m in batch_img_metas] if batch_img_metas else None,
            inputs.shape[1], inputs.device)
        _, logits = self.run_core(inputs, audio, frame_valid, all_stages=False)
        return self._core_logits_at(logits, inputs.shape[-2:])

    def forward(self, inputs: Tensor, data_samples: Optional[List[SegDataSample]] = None,
                mode: str = 'tensor', audio: Optional[Tensor] = None):
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
        neck_out, stages = self.run_core(inputs, audio, frame_valid, all_stages=True)
        losses = add_prefix(self.decode_head.loss_by_logits(stages, data_samples, t), 'decode')
        if self.use_bcl:
            losses[self.bcl_loss.loss_name] = self.bcl_loss(self._bcl_input(neck_out, data_samples))
        return losses

    @staticmethod
    def _bcl_input(neck_out: Dict, data_samples: Sequence[SegDataSample]) -> Dict:
        """The EIM output for BCL, with frames whose audio was replaced (metainfo ``audio_replaced``, negative-audio
        training) masked out like padded frames: their sound is not their frame's, and silence or noise is
        the same sound in every clip, so as anchors or keys they would only be false pairs."""
        rows = [ds.metainfo.get('audio_replaced') for ds in data_samples]
        if not any(r is not None and any(r) for r in rows):
            return neck_out
        b, t = neck_out['audio_orig'].shape[:2]
        keep = torch.tensor([[not v for v in (r or [0] * t)] for r in rows], dtype=torch.bool)
        keep = keep.to(neck_out['audio_orig'].device)
        valid = neck_out.get('frame_valid')
        return dict(neck_out, frame_valid=keep if valid is None else keep & valid.bool())

    def predict(self, inputs: Tensor, data_samples: Optional[List[SegDataSample]] = None,
                audio: Optional[Tensor] = None) -> List[SegDataSample]:
        """Per-clip predictions at ``ori_shape`` (see module docstring, step 5)."""
        n, t = inputs.shape[:2]
        frame_valid = self.frame_valid_from_samples(data_samples, t, inputs.device)
        _, logits = self.run_core(inputs, audio, frame_valid, all_stages=False)
        logits = self._core_logits_at(logits, inputs.shape[-2:])
        return self.postprocess_result(logits.view(n, t, *logits.shape[1:]), data_samples)

    def _forward(self, inputs: Tensor, data_samples: Optional[List[SegDataSample]] = None,
                 audio: Optional[Tensor] = None) -> Tensor:
        """Final logits ``(N, T, K, H, W)`` at the input size; works without data_samples."""
        n, t = inputs.shape[:2]
        frame_valid = self.frame_valid_from_samples(data_samples, t, inputs.device)
        # last stage only (no masks of the earlier stages)
        _, logits = self.run_core(inputs, audio, frame_valid, all_stages=False)
        out = self._core_logits_at(logits, inputs.shape[-2:])
        return out.view(n, t, *out.shape[1:])

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: Optional[List[SegDataSample]] = None) -> List[SegDataSample]:
        """(N, T, K, H, W) logits -> SegDataSamples with ``pred_sem_seg`` (T, h, w) (+ ``seg_logits`` if K = 1).

        Per clip: crop the padding (to ``img_shape``), undo the flip, resize to ``ori_shape``.
        """
        n, t, k = seg_logits.shape[:3]
        seg_logits = seg_logits.float()  # bf16 / fp16 models: metrics and numpy need float32
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(n)]
        for i, ds in enumerate(data_samples):
            meta = ds.metainfo
            x = seg_logits[i]                                                 # (T, K, H, W)
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
                logits = x[:, 0]                                              # (T, H, W)
                pred = (logits > 0).long()                                    # sigmoid(x) > 0.5 <=> x > 0
                ds.set_data(dict(seg_logits=PixelData(data=logits), pred_sem_seg=PixelData(data=pred)))
            else:
                pred = x.argmax(dim=1)                                        # (T, H, W)
                valid = meta.get('frame_valid')
                if valid is not None and not all(valid):
                    keep = torch.tensor(valid, dtype=torch.bool).to(pred.device, non_blocking=True)
                    pred = pred * keep[:, None, None]
                ds.set_data(dict(pred_sem_seg=PixelData(data=pred)))
        return data_samples


_COMPILED_CORES: Dict[str, Callable] = {}


def _compiled_core(compile_kwargs: dict) -> Callable:
    """``torch.compile`` of the unbound :meth:`CCFormer._core`, one per set of compile arguments.

    Compiling the unbound function keeps no reference to a model and leaves the module picklable and deep-copyable.
    Models of the same structure share the compiled graphs (their parameters are graph inputs), and also dynamo's
    recompile limit (``torch._dynamo.config.recompile_limit``, 8 input signatures).
    """
    key = repr(sorted(compile_kwargs.items(), key=lambda kv: kv[0]))
    if key not in _COMPILED_CORES:
        _COMPILED_CORES[key] = torch.compile(CCFormer._core, **compile_kwargs)
    return _COMPILED_CORES[key]
