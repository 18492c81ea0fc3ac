"""Which frames get a mask, split by what sounds in them (S4 / MS3, binary masks).

The robustness report gives one figure for the frames whose ground truth is empty with the true audio ("empty
(true)": ``empty_fp_rate`` of ``original``). Those frames are empty for different reasons, and a model gets them
wrong for different reasons: in a *quiet* second nothing sounds (a presence decision on the level of the sound),
in an *off-screen* second something sounds that is not on screen (telling which kind sounds and whether it is in
the picture). :func:`frame_causes` counts the frames with a mask in each group, from the kinds the data say each
second hears (:func:`~projects.ccformer.datasets.audio_conditions.dataset_clip_kinds`: the generator's
``clip_kinds.json``, the S4 CSV, AVSS label maps):

* ``sounding``: the ground truth has foreground;
* ``offscreen``: empty ground truth, something audible, none of it visible in the clip;
* ``quiet``: empty ground truth, nothing audible;
* ``visible_silent``: empty ground truth while a kind visible in the clip is audible (the labels and the kinds
  disagree, e.g. a sounding object hidden in that frame);
* ``unknown``: empty ground truth, the clip's kinds unknown (e.g. MS3 without ``clip_kinds.json``).

Seconds that a per-second ``audible`` list does not cover hear nothing (as the training's donor pool reads them).
The S4 CSV names one category for the whole clip, seen and heard, so there every empty frame falls in
``visible_silent``: the split tells more with a ``clip_kinds.json`` that says what each second hears.

A frame has a mask when any pixel's ``sigmoid(logit) > 0.5`` (the metric's rule), so the empty groups together give
the report's ``empty_fp_rate`` of the true audio.
"""

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..datasets.audio_conditions import Kinds
from .metrics.avs_metric import scored_frame_stats

#: Frame groups, in report order (the first has foreground, the others an empty ground truth).
GROUPS = ('sounding', 'offscreen', 'quiet', 'visible_silent', 'unknown')
EMPTY_GROUPS = GROUPS[1:]

GROUP_TEXT = {
    'sounding': 'sounding (ground truth not empty)',
    'offscreen': 'empty: only kinds not on screen sound',
    'quiet': 'empty: nothing sounds',
    'visible_silent': 'empty: a visible kind sounds',
    'unknown': 'empty: what sounds is unknown',
}


def frame_group(has_foreground: bool, kinds: Optional[Kinds], t: int) -> str:
    """The group of frame ``t`` of a clip with ``kinds`` = ``(visible, audible per second)`` (None: unknown)."""
    if has_foreground:
        return 'sounding'
    if kinds is None or t >= len(kinds[1]):
        return 'unknown'
    visible, audible = kinds[0], kinds[1][t]
    if not audible:
        return 'quiet'
    return 'visible_silent' if audible & visible else 'offscreen'


def clip_frames(sample) -> Tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """``(video_id, scored, has_foreground, has_mask)`` of a predicted clip, bool arrays over its ``T`` frames.

    ``scored`` is the metainfo ``gt_valid`` (all True when absent); ``has_foreground`` and ``has_mask`` come from
    the scored frames only (False elsewhere), read as :class:`~.metrics.AVSBenchMetric` reads them
    (:func:`~.metrics.avs_metric.scored_frame_stats`).
    """
    video_id, scored, stats = scored_frame_stats(sample, pr_num=1)
    has_fg, has_mask = np.zeros_like(scored), np.zeros_like(scored)
    has_fg[scored], has_mask[scored] = stats['gt_fg'] > 0, stats['pred_fg'] > 0
    return video_id, scored, has_fg, has_mask


def frame_causes(
    clips: Iterable[Tuple[str, np.ndarray, np.ndarray, np.ndarray]], kinds: Mapping[str, Optional[Kinds]]
) -> Dict[str, dict]:
    """Frames and frames with a mask per group.

    Args:
        clips: ``(video_id, scored, has_foreground, has_mask)`` per clip, the last three bool arrays over its frames.
        kinds: ``{video_id: (visible, audible per second) or None}``; a clip missing here counts as unknown.

    Returns:
        ``{group: {'frames': n, 'masked': k, 'masked_percent': 100 k / n or None}}`` for every group of
        :data:`GROUPS`, plus ``'empty'`` (all empty-ground-truth frames together).
    """
    frames = dict.fromkeys(GROUPS, 0)
    masked = dict.fromkeys(GROUPS, 0)
    for video_id, scored, has_fg, has_mask in clips:
        clip_kinds = kinds.get(video_id)
        for t in np.flatnonzero(scored):
            group = frame_group(bool(has_fg[t]), clip_kinds, int(t))
            frames[group] += 1
            masked[group] += int(bool(has_mask[t]))
    frames['empty'] = sum(frames[g] for g in EMPTY_GROUPS)
    masked['empty'] = sum(masked[g] for g in EMPTY_GROUPS)
    return {
        g: dict(frames=frames[g], masked=masked[g], masked_percent=100 * masked[g] / frames[g] if frames[g] else None)
        for g in GROUPS + ('empty',)
    }


@torch.no_grad()
def predict_frames(model, dataloader: Iterable) -> Iterable[Tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`clip_frames` of every clip of ``dataloader``, predicted by ``model.test_step``."""
    model.eval()
    for batch in dataloader:
        for sample in model.test_step(batch):
            yield clip_frames(sample)


def format_causes(causes: Mapping[str, dict], groups: Sequence[str] = GROUPS) -> str:
    """A Markdown table of :func:`frame_causes` (groups without frames left out; the empty total last)."""
    lines = ['| frames (true audio) | frames | with a mask | share |', '|---|---|---|---|']
    for g in tuple(groups) + ('empty',):
        c = causes[g]
        if not c['frames']:
            continue
        text = 'empty, all (the report\'s "empty (true)")' if g == 'empty' else GROUP_TEXT[g]
        lines.append(f'| {text} | {c["frames"]} | {c["masked"]} | {c["masked_percent"]:.1f}% |')
    return '\n'.join(lines)
