"""``save_clip_masks`` (projects/ccformer/evaluation/mask_io.py): the PNG files of one predicted clip."""

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from projects.ccformer.evaluation import save_clip_masks


def _sample(pred, frame_valid, logits=False):
    sample = SegDataSample(metainfo=dict(video_id='v1', frame_valid=frame_valid))
    sample.pred_sem_seg = PixelData(data=torch.as_tensor(pred))
    if logits:
        sample.seg_logits = PixelData(data=torch.zeros(pred.shape, dtype=torch.float32))
    return sample


def test_binary_masks_are_0_255_and_padded_frames_skipped(tmp_path):
    pred = np.zeros((3, 4, 5), np.int64)
    pred[0, 1, 2] = 1
    save_clip_masks(_sample(pred, [1, 1, 0], logits=True), str(tmp_path))
    assert sorted(p.name for p in (tmp_path / 'v1').iterdir()) == ['v1_1.png', 'v1_2.png']
    img = cv2.imread(str(tmp_path / 'v1' / 'v1_1.png'), cv2.IMREAD_UNCHANGED)
    assert img.shape == (4, 5) and img[1, 2] == 255 and img.sum() == 255


@pytest.mark.parametrize('as_dict', [False, True])
def test_semantic_masks_keep_class_indices(tmp_path, as_dict):
    pred = np.full((2, 3, 3), 70, np.int64)
    sample = _sample(pred, [1, 1])
    save_clip_masks(sample.to_dict() if as_dict else sample, str(tmp_path))
    img = cv2.imread(str(tmp_path / 'v1' / 'v1_2.png'), cv2.IMREAD_UNCHANGED)
    assert (img == 70).all()


def test_full_disk_is_an_error_naming_the_mask(tiny_fs):
    """tools/test.py --out on a full disk: an OSError naming the mask file (before: cv2.imwrite reported success,
    0-byte PNGs were left and the run exited 0)."""
    with open(f'{tiny_fs}/filler', 'wb', buffering=0) as f:
        try:
            while True:
                f.write(b'\0' * 1024)
        except OSError:
            pass
    pred = np.random.RandomState(0).randint(0, 2, (2, 16, 16))
    with pytest.raises(OSError, match=r'cannot write .*/v1/v1_1\.png \(No space left on device\)'):
        save_clip_masks(_sample(pred, [1, 1], logits=True), tiny_fs)
