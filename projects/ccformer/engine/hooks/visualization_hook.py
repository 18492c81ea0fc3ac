"""Clip-aware visualization hook: one image per clip, prediction row above ground-truth row."""

from typing import List, Optional, Sequence, Tuple

import cv2
import mmcv
import mmengine.fileio as fileio
import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.visualization import Visualizer
from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample

from ...datasets.palette import overlay_mask, resolve_palette  # noqa: F401  (re-exported)


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _put_text(image: np.ndarray, text: str) -> np.ndarray:
    scale = max(0.3, min(image.shape[:2]) / 400)
    cv2.putText(image, text, (3, int(14 * scale / 0.4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(
        image, text, (3, int(14 * scale / 0.4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
    )
    return image


def draw_clip(
    frames: Sequence[Optional[np.ndarray]],
    pred: Optional[np.ndarray] = None,
    gt: Optional[np.ndarray] = None,
    gt_valid: Optional[Sequence[int]] = None,
    palette: Optional[Sequence[Tuple[int, int, int]]] = None,
    alpha: float = 0.5,
    with_text: bool = True,
) -> np.ndarray:
    """Compose one clip: T frames side by side, prediction row on top, ground-truth row below.

    Args:
        frames: T RGB uint8 frames ``(H, W, 3)``; ``None`` (padded AVSS frame) is drawn black.
        pred (np.ndarray, optional): ``(T, H, W)`` predicted label maps.
        gt (np.ndarray, optional): ``(T, H, W)`` ground-truth label maps.
        gt_valid: per-frame flag; frames with 0 have no annotation and are drawn without a GT overlay.
        palette: RGB colour per label; default red foreground for binary masks.
        alpha (float): overlay opacity.
        with_text (bool): write "pred k" / "GT k" on each tile.

    Returns:
        np.ndarray: ``(rows * H, T * W, 3)`` uint8 RGB image, rows = number of given mask sets.
    """
    ref = next((f for f in frames if f is not None), None)
    shape = pred.shape[1:] if pred is not None else (gt.shape[1:] if gt is not None else ref.shape[:2])
    h, w = int(shape[0]), int(shape[1])
    num_labels = 2
    for m in (pred, gt):
        if m is not None and m.size:
            num_labels = max(num_labels, int(m.max()) + 1)
    palette = palette if palette is not None else resolve_palette(None, num_labels)
    tiles = []
    for f in frames:
        if f is None:
            tiles.append(np.zeros((h, w, 3), np.uint8))
        elif f.shape[:2] != (h, w):
            tiles.append(cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR))
        else:
            tiles.append(f)
    rows = []
    for tag, masks in (('pred', pred), ('GT', gt)):
        if masks is None:
            continue
        row = []
        for t, tile in enumerate(tiles):
            valid = tag == 'pred' or gt_valid is None or bool(gt_valid[t])
            drawn = overlay_mask(tile, masks[t], palette, alpha) if valid else (tile * 0.5).astype(np.uint8)
            if with_text:
                drawn = _put_text(drawn.copy(), f'{tag} {t + 1}' if valid else f'{t + 1}: no label')
            row.append(drawn)
        rows.append(np.concatenate(row, axis=1))
    if not rows:
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


@HOOKS.register_module()
class AVSVisualizationHook(Hook):
    """Draw every ``interval``-th val/test batch clip by clip (mmseg ``SegVisualizationHook`` for clips).

    For each output ``SegDataSample`` it reads the T frames named in ``metainfo['frame_paths']``, overlays
    ``pred_sem_seg.data`` ``(T, H, W)`` (top row) and ``gt_sem_seg.data`` ``(T, H, W)`` (bottom row, frames whose
    ``gt_valid`` is 0 are dimmed) and sends the picture to the current ``Visualizer`` (``add_image``), so with
    ``tools/test.py --show-dir DIR`` the files land in ``DIR/vis_data/vis_image/{mode}_{video_id}_{step}.png``.

    Args:
        draw (bool): draw at all; ``tools/test.py --show/--show-dir`` turns it on. Defaults to False.
        interval (int): draw every ``interval``-th batch. Defaults to 1 (every clip when drawing is on).
        show (bool): display in a window instead of saving. Defaults to False.
        wait_time (float): seconds to show each window. Defaults to 0.
        draw_gt (bool): add the ground-truth row when the sample has ``gt_sem_seg``. Defaults to True.
        alpha (float): overlay opacity. Defaults to 0.5.
        backend_args (dict, optional): file backend arguments for reading frames.
    """

    priority = 'NORMAL'

    def __init__(
        self,
        draw: bool = False,
        interval: int = 1,
        show: bool = False,
        wait_time: float = 0.0,
        draw_gt: bool = True,
        alpha: float = 0.5,
        backend_args: Optional[dict] = None,
    ):
        if interval < 1:
            raise ValueError(f'AVSVisualizationHook: interval must be >= 1, got {interval}')
        self._visualizer: Visualizer = Visualizer.get_current_instance()
        self.draw = draw
        self.interval = interval
        self.show = show
        if self.show:
            self._visualizer._vis_backends = {}
        self.wait_time = wait_time
        self.draw_gt = draw_gt
        self.alpha = alpha
        self.backend_args = backend_args.copy() if backend_args else None

    def _read_frames(self, sample: SegDataSample) -> List[Optional[np.ndarray]]:
        paths = sample.metainfo.get('frame_paths')
        if paths is None:
            paths = [sample.metainfo['img_path']]
        valid = sample.metainfo.get('frame_valid') or [1] * len(paths)
        frames = []
        for path, ok in zip(paths, valid):
            if path is None or not ok:
                frames.append(None)
                continue
            img_bytes = fileio.get(path, backend_args=self.backend_args)
            frames.append(mmcv.imfrombytes(img_bytes, channel_order='rgb'))
        return frames

    def render(self, sample: SegDataSample) -> np.ndarray:
        """Return the drawn ``(rows*H, T*W, 3)`` RGB image of one clip."""
        frames = self._read_frames(sample)
        pred = _to_numpy(sample.pred_sem_seg.data) if 'pred_sem_seg' in sample else None
        gt = None
        if self.draw_gt and 'gt_sem_seg' in sample:
            gt = _to_numpy(sample.gt_sem_seg.data)
            if pred is not None and gt.shape != pred.shape:
                gt = np.stack(
                    [
                        cv2.resize(g.astype(np.uint8), (pred.shape[2], pred.shape[1]), interpolation=cv2.INTER_NEAREST)
                        for g in gt
                    ]
                )
        if pred is not None and pred.ndim == 2:
            pred = pred[None]
        if gt is not None and gt.ndim == 2:
            gt = gt[None]
        num_labels = 2
        for m in (pred, gt):
            if m is not None and m.size:
                num_labels = max(num_labels, int(m.max()) + 1)
        meta = getattr(self._visualizer, 'dataset_meta', None)
        num_labels = max(num_labels, len((meta or {}).get('classes') or []))
        palette = resolve_palette(meta, num_labels)
        return draw_clip(frames, pred, gt, sample.metainfo.get('gt_valid'), palette, self.alpha)

    def _after_iter(
        self, runner, batch_idx: int, data_batch: dict, outputs: Sequence[SegDataSample], mode: str = 'val'
    ) -> None:
        if not self.draw or mode == 'train':
            return
        if not self.every_n_inner_iters(batch_idx, self.interval):
            return
        for sample in outputs:
            image = self.render(sample)
            video_id = sample.metainfo.get('video_id', f'{batch_idx}')
            name = f'{mode}_{video_id}'
            if self.show:
                self._visualizer.show(image, win_name=name, wait_time=self.wait_time)
            else:
                self._visualizer.add_image(name, image, step=runner.iter)
