"""Class palettes of AVSBench (the AVSS colour labels, ``docs/data.md``) and drawing a label map over a frame.

Numpy and OpenCV only (the ONNX Runtime demo draws with it without the OpenMMLab stack).
"""

from typing import List, Optional, Sequence, Tuple

import cv2
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
    codes = (
        (label_rgb[..., 0].astype(np.int64) << 16)
        | (label_rgb[..., 1].astype(np.int64) << 8)
        | label_rgb[..., 2].astype(np.int64)
    )
    pal = np.asarray(palette, dtype=np.int64)
    pal_codes = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    order = np.argsort(pal_codes, kind='stable')
    sorted_codes = pal_codes[order]
    pos = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
    found = sorted_codes[pos] == codes
    return np.where(found, order[pos], 0).astype(np.uint8)


# Colour of the foreground class when the dataset gives no palette (or a black/white binary one).
DEFAULT_FG_COLOR = (255, 48, 48)


def resolve_palette(dataset_meta: Optional[dict], num_labels: int) -> List[Tuple[int, int, int]]:
    """Return one RGB colour per label index ``0..num_labels-1``.

    The dataset palette (``dataset_meta['palette']``) is used when it has enough entries. For binary datasets
    whose foreground colour is white or black (invisible on a blend) a red foreground is used instead.
    """
    palette = list((dataset_meta or {}).get('palette') or [])
    if len(palette) < num_labels:
        rng = np.random.RandomState(42)
        extra = rng.randint(0, 256, size=(num_labels - len(palette), 3))
        palette = palette + [tuple(int(v) for v in c) for c in extra]
    palette = [tuple(int(v) for v in c) for c in palette]
    if num_labels <= 2 and len(palette) > 1 and len(set(palette[1])) == 1:
        palette[1] = DEFAULT_FG_COLOR
    return palette


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    palette: Sequence[Tuple[int, int, int]],
    alpha: float = 0.5,
    draw_contour: bool = True,
) -> np.ndarray:
    """Blend a label map on an RGB image; label 0 (background) is left untouched.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB frame.
        mask (np.ndarray): ``(H, W)`` integer label map (0 = background).
        palette: RGB colour per label.
        alpha (float): opacity of the colour on labelled pixels.
        draw_contour (bool): draw each label's outline in its colour.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB image.
    """
    if mask.shape != image.shape[:2]:
        mask = cv2.resize(mask.astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    out = image.astype(np.float32).copy()
    for label in np.unique(mask):
        if label == 0 or label >= len(palette):
            continue
        region = mask == label
        color = np.asarray(palette[int(label)], dtype=np.float32)
        out[region] = out[region] * (1 - alpha) + color * alpha
    out = out.clip(0, 255).astype(np.uint8)
    if draw_contour:
        for label in np.unique(mask):
            if label == 0 or label >= len(palette):
                continue
            contours, _ = cv2.findContours((mask == label).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, tuple(int(c) for c in palette[int(label)]), 1)
    return out
