"""Class palettes of AVSBench (``docs/avsbench.md`` section 1.4)."""
from typing import List

import numpy as np

AVSS_NUM_CLASSES = 71
BINARY_CLASSES = ('background', 'sounding object')
BINARY_PALETTE = [[0, 0, 0], [255, 255, 255]]


def voc_palette(num_classes: int = AVSS_NUM_CLASSES) -> List[List[int]]:
    """PASCAL-VOC bit-interleaved colours ``[[r, g, b], ...]`` for indices ``0..num_classes-1``.

    Bits 0/1/2 of each 3-bit group of the index go to R/G/B at bit positions 7, 6, ...
    (0 -> black, 1 -> (128, 0, 0), 2 -> (0, 128, 0), 8 -> (64, 0, 0), 70 -> (32, 128, 128)).
    """
    palette = []
    for j in range(num_classes):
        rgb, c, shift = [0, 0, 0], j, 7
        while c:
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << shift
            c >>= 3
            shift -= 1
        palette.append(rgb)
    return palette


def rgb_to_index(label_rgb: np.ndarray, palette: List[List[int]]) -> np.ndarray:
    """Map an RGB label image ``(H, W, 3)`` to class indices ``(H, W)`` uint8 by exact colour match.

    Colours not in the palette map to 0 (background), as the official one-hot argmax does.
    """
    codes = (label_rgb[..., 0].astype(np.int64) << 16) | (label_rgb[..., 1].astype(np.int64) << 8) \
        | label_rgb[..., 2].astype(np.int64)
    pal = np.asarray(palette, dtype=np.int64)
    pal_codes = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    order = np.argsort(pal_codes, kind='stable')
    sorted_codes = pal_codes[order]
    pos = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
    found = sorted_codes[pos] == codes
    return np.where(found, order[pos], 0).astype(np.uint8)
