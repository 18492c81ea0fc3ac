"""Calibrating the presence decision of a trained model on its validation split.

The presence head (``AudioVisualPresence``) gives each frame a logit ``p``; the masks are kept where
``p + presence_margin > 0`` (``CCFormerHead.gate``). Trained on the train split, the logit's zero need not be the
best threshold on data the model did not fit. :func:`presence_scores` collects the logits of the validation clips
heard with their own audio (a frame is *positive* when its ground truth has foreground, *negative* when it is empty)
and under negative audio (every frame negative); :func:`choose_margin` picks the shift of the logit that maximises
the balanced accuracy ``(TPR + TNR) / 2``; :func:`calibrated_state_dict` moves the shift into the head's bias, so
the calibrated checkpoint is an ordinary checkpoint of the same model.
"""

from typing import Dict, Iterable, Tuple

import numpy as np
import torch

from ..datasets.audio import silent_examples

#: The parameter that carries the shift.
PRESENCE_BIAS_KEY = 'decode_head.presence_head.bias'


def _positive_frames(sample, num_frames: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(labelled, positive)`` bool flags of the T frames of a packed sample: a real frame with a label, and
    whether that label has foreground (classes > 0, 255 ignored)."""
    meta = sample.metainfo
    frame_valid = np.asarray(meta.get('frame_valid', [1] * num_frames), bool)
    gt_valid = np.asarray(meta.get('gt_valid', [1] * num_frames), bool)
    gt = sample.gt_sem_seg.data.reshape(num_frames, -1)
    positive = ((gt > 0) & (gt != 255)).any(1).cpu().numpy()
    return frame_valid & gt_valid, positive


@torch.no_grad()
def presence_scores(model, dataloader: Iterable) -> Tuple[np.ndarray, np.ndarray]:
    """Presence logits of every labelled real frame of ``dataloader``'s clips and their labels.

    A model built with ``empty_when_silent`` empties the frames whose audio is digital silence whatever the presence
    says, so those frames are left out.

    Args:
        model: a ``CCFormer`` with a presence head (eval mode is set here).
        dataloader: batches as the test loop gets them (``inputs``, ``data_samples``; audio in ``inputs``'
            companion key, as the data preprocessor expects).

    Returns:
        tuple: ``scores`` (n,) float64 logits and ``labels`` (n,) bool (True: something on screen sounds).
    """
    if getattr(model.decode_head, 'presence_head', None) is None:
        raise ValueError(
            'the model has no presence head (decode_head.presence_head), so there is no presence decision to '
            'calibrate: use a -robust config, whose heads have one'
        )
    model.eval()
    scores, labels = [], []
    for batch in dataloader:
        data = model.data_preprocessor(batch, False)
        inputs, samples = data['inputs'], data['data_samples']
        t = inputs.shape[1]
        frame_valid = model.frame_valid_from_samples(samples, t, inputs.device)
        _, out = model.run_core(inputs, data.get('audio'), frame_valid, all_stages=True)
        # the decision the model makes: masks kept where presence + presence_margin > 0 (CCFormerHead.gate)
        presence = (out.presence.float() + model.decode_head.presence_margin).view(len(samples), t).cpu().numpy()
        ruled = np.zeros((len(samples), t), bool)
        if getattr(model, 'empty_when_silent', False):
            ruled = silent_examples(data['audio'].float()).reshape(len(samples), t).cpu().numpy()
        for i, sample in enumerate(samples):
            keep, positive = _positive_frames(sample, t)
            keep = keep & ~ruled[i]
            scores.append(presence[i][keep])
            labels.append(positive[keep])
    if not scores:
        raise ValueError('the dataloader gave no clip to calibrate on')
    return np.concatenate(scores).astype(np.float64), np.concatenate(labels).astype(bool)


def balanced_accuracy(scores: np.ndarray, labels: np.ndarray, margin: float = 0.0) -> Dict[str, float]:
    """``TPR``, ``TNR`` and their mean ``balanced`` (percent) of the decision ``score + margin > 0``."""
    decision = scores + margin > 0
    pos, neg = labels.sum(), (~labels).sum()
    tpr = 100.0 * (decision & labels).sum() / pos if pos else float('nan')
    tnr = 100.0 * (~decision & ~labels).sum() / neg if neg else float('nan')
    return dict(TPR=float(tpr), TNR=float(tnr), balanced=float(np.nanmean([tpr, tnr])))


def choose_margin(scores: np.ndarray, labels: np.ndarray) -> float:
    """The shift ``m`` of the logits that maximises the balanced accuracy of ``score + m > 0``.

    Every distinct decision is tried (thresholds halfway between consecutive sorted scores, and beyond both ends);
    among equally good shifts the one closest to 0 wins, so a model already at its best keeps ``m = 0``.

    Raises:
        ValueError: the frames are all positive or all negative (a balanced accuracy needs both).
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    if labels.all() or not labels.any():
        raise ValueError(
            f'presence calibration needs positive and negative frames, got {int(labels.sum())} positive of '
            f'{labels.size}: calibrate with the true audio and at least one negative condition'
        )
    values = np.unique(scores)
    cuts = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    pos, neg = np.sort(scores[labels]), np.sort(scores[~labels])
    tpr = 1.0 - np.searchsorted(pos, cuts, 'right') / len(pos)  # score > cut, i.e. score + m > 0 with m = -cut
    tnr = np.searchsorted(neg, cuts, 'right') / len(neg)
    balanced = np.round((tpr + tnr) / 2, 12)
    margins = -cuts
    best = np.flatnonzero(balanced == balanced.max())
    candidates = margins[best]
    if balanced_accuracy(scores, labels, 0.0)['balanced'] / 100 >= balanced.max() - 1e-12:
        return 0.0
    return float(candidates[np.argmin(np.abs(candidates))])


def calibrated_state_dict(state_dict: Dict[str, torch.Tensor], margin: float) -> Dict[str, torch.Tensor]:
    """A copy of ``state_dict`` whose presence bias is shifted by ``margin`` (the calibrated model)."""
    if PRESENCE_BIAS_KEY not in state_dict:
        raise KeyError(f'the checkpoint has no {PRESENCE_BIAS_KEY}: it is not of a model with a presence head')
    out = type(state_dict)(state_dict)
    if hasattr(state_dict, '_metadata'):
        out._metadata = state_dict._metadata
    out[PRESENCE_BIAS_KEY] = state_dict[PRESENCE_BIAS_KEY] + margin
    return out
