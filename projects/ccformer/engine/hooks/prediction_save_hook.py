"""Save the per-frame predicted masks of every test clip as PNG files (``tools/test.py --out DIR``)."""

from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample

from ...evaluation.mask_io import save_clip_masks


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
