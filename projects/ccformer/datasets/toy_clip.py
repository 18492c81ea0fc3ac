"""What a toy data family's clip maker returns (:class:`ToyClip`), shared by :mod:`.toy` and :mod:`.toy_recorded`."""

from dataclasses import dataclass
from typing import List

import numpy as np


@dataclass
class ToyClip:
    """A generated clip: frames, label maps and audio."""

    frames: List[np.ndarray]  # BGR uint8 (h, w, 3)
    labels: List[np.ndarray]  # uint8 (h, w): 0 = background, else the sounding kind's class index
    audio: np.ndarray  # 16 kHz float waveform, num_frames seconds
    target_kinds: List[str]  # kinds that sound on screen in some second
    visible_kinds: List[str]
    audible_kinds: List[List[str]]  # per second, on or off screen

    def kinds_entry(self) -> dict:
        """This clip's entry of ``clip_kinds.json``: the kinds seen, and the kinds heard in each second."""
        return dict(visible=sorted(self.visible_kinds), audible=[sorted(now) for now in self.audible_kinds])
