"""Predicted clip masks as PNG files: what ``tools/test.py --out DIR`` and the metrics' ``output_dir`` write."""

import os.path as osp
from typing import Optional, Union

import numpy as np
from mmseg.structures import SegDataSample

from ..utils.atomic import write_image


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
    for k, (mask, ok) in enumerate(zip(pred, valid), start=1):
        if ok:
            img = (mask > 0).astype(np.uint8) * 255 if binary else mask.astype(np.uint8)
            write_image(osp.join(clip_dir, f'{video_id}_{k}.png'), img)
