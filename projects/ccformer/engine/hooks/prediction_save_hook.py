"""Save the per-frame predicted masks of every test clip as PNG files (``tools/test.py --out DIR``)."""
import os
import os.path as osp
from typing import Optional, Sequence, Union

import cv2
import numpy as np
from mmengine.hooks import Hook

from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample


def save_clip_masks(sample: Union[SegDataSample, dict], out_dir: str, binary: Optional[bool] = None) -> None:
    """Write the predicted masks of one clip as ``out_dir/<video_id>/<video_id>_<k>.png`` (k = 1..T).

    ``sample`` is a ``SegDataSample`` or its ``to_dict()`` (what mmengine's ``Evaluator`` hands to metrics).
    0/255 single-channel PNGs for binary predictions (``binary`` None: when the sample has ``seg_logits``, i.e. a
    binary head), class-index PNGs otherwise; frames with ``frame_valid`` 0 (padding) are skipped.
    """
    if isinstance(sample, dict):  # to_dict() puts metainfo and fields at the top level
        meta, pred = sample, sample['pred_sem_seg']['data']
    else:
        meta, pred = sample.metainfo, sample.pred_sem_seg.data
    video_id = str(meta.get('video_id', 'clip'))
    pred = pred.cpu().numpy()
    if pred.ndim == 2:
        pred = pred[None]
    binary = binary if binary is not None else 'seg_logits' in sample
    valid = meta.get('frame_valid') or [1] * len(pred)
    clip_dir = osp.join(out_dir, video_id)
    os.makedirs(clip_dir, exist_ok=True)
    for k, (mask, ok) in enumerate(zip(pred, valid), start=1):
        if not ok:
            continue
        img = (mask > 0).astype(np.uint8) * 255 if binary else mask.astype(np.uint8)
        path = osp.join(clip_dir, f'{video_id}_{k}.png')
        if not cv2.imwrite(path, img):
            raise OSError(f'cannot write the predicted mask {path}: check that the output folder is writable')


@HOOKS.register_module()
class AVSPredictionSaveHook(Hook):
    """Write ``out_dir/<video_id>/<video_id>_<k>.png`` (k = 1..T) for every predicted clip.

    Binary models (S4/MS3) are written as 0/255 single-channel PNGs, the format of the AVSBench ground truth;
    semantic models (AVSS) as class-index PNGs (0..70, 0 = background). Padded frames (``frame_valid`` 0) are
    skipped. Masks are at ``ori_shape`` (the model's output size). mmseg's ``IoUMetric(output_dir=...)`` plays this
    role for images; AVS metrics keep only per-frame counts, so the files come from this hook.

    Args:
        out_dir (str): output directory (created).
        binary (bool, optional): force 0/255 (True) or index (False) PNGs; default: 0/255 when the
            prediction has at most labels {0, 1} and the sample has ``seg_logits`` (binary head).
        save_val (bool): also save during validation. Defaults to False.
    """

    priority = 'NORMAL'

    def __init__(self, out_dir: str, binary: Optional[bool] = None, save_val: bool = False):
        self.out_dir = out_dir
        self.binary = binary
        self.save_val = save_val

    def _save(self, outputs: Sequence[SegDataSample]) -> None:
        for sample in outputs:
            save_clip_masks(sample, self.out_dir, self.binary)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._save(outputs)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.save_val:
            self._save(outputs)
