"""Negative-audio evaluation: one model tested under every audio condition, a table, and combined scores.

Used by ``tools/test.py --audio-condition``, ``tools/analysis_tools/robustness.py`` and the main job. The audio
conditions themselves are :class:`~projects.ccformer.datasets.AudioConditionDataset`; the figures are the test
metric's (``AVSBenchMetric`` / ``AVSSMetric``): ``mIoU`` / ``Fscore`` with the clip's own or another clip's audio,
and under the negative conditions (every frame's ground truth empty) ``empty_fp_rate`` (percent of frames with any
predicted foreground) and ``empty_fp_pixel_rate`` (mean percent of pixels predicted foreground, AVSBench-Robust's
FPR).

Combined scores (``docs/robustness.md``), in the spirit of AVSBench-Robust's G-mIoU / G-F (Li et al.,
arXiv 2502.00358): the harmonic mean of the positive-audio score and of ``100 - FPR``, FPR being the negative
conditions' mean ``empty_fp_pixel_rate`` (``G_mIoU``, ``G_F``) or mean ``empty_fp_rate`` (``G_mIoU_frame``,
``G_F_frame``)::

    G = 2 * S * (100 - FPR) / (S + 100 - FPR)      (0 when both are 0)
"""

import copy
import logging
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from ..datasets.audio_conditions import AUDIO_CONDITIONS, EVAL_NOISE_DBFS, NEGATIVE_CONDITIONS

#: What the table calls each condition.
CONDITION_NAMES = dict(
    original='original audio',
    shuffled='shuffled (another clip)',
    silence='silence',
    noise='noise',
    offscreen='off-screen sound',
)
#: The project's goals for empty output (percent of frames with any mask, at most): frames whose ground truth is
#: empty with the true audio (``original``), and every frame under each negative condition.
EMPTY_GOALS = dict(original=20.0, silence=5.0, noise=10.0, offscreen=20.0)
#: (combined key, positive metric key, negative metric key)
COMBINED = (
    ('G_mIoU', 'mIoU', 'empty_fp_pixel_rate'),
    ('G_F', 'Fscore', 'empty_fp_pixel_rate'),
    ('G_mIoU_frame', 'mIoU', 'empty_fp_rate'),
    ('G_F_frame', 'Fscore', 'empty_fp_rate'),
)


def audio_condition_dataset(dataset, condition: str, seed: int = 0, noise_dbfs: float = EVAL_NOISE_DBFS):
    """``dataset`` (config dict or instance) heard under ``condition``: itself for ``original``, else an
    ``AudioConditionDataset`` config wrapping it."""
    if condition not in AUDIO_CONDITIONS:
        raise ValueError(f'audio condition {condition!r} is unknown; use one of {AUDIO_CONDITIONS}')
    if condition == 'original':
        return dataset
    return dict(
        type='AudioConditionDataset', dataset=dataset, condition=condition, seed=int(seed), noise_dbfs=float(noise_dbfs)
    )


def _metric(metrics: dict, key: str) -> Optional[float]:
    """``metrics[key]``, also under an evaluator prefix (``prefix/key``); None when absent."""
    if key in metrics:
        return float(metrics[key])
    found = [v for k, v in metrics.items() if k.endswith('/' + key)]
    return float(found[0]) if len(found) == 1 else None


def harmonic_mean(a: float, b: float) -> float:
    """``2ab / (a + b)``; 0 when ``a + b`` is 0."""
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def combined_scores(results: Dict[str, dict]) -> dict:
    """Combined positive / negative scores from the per-condition results of :func:`evaluate_audio_conditions`.

    Returns:
        dict with ``negative_conditions`` (those measured), ``FPR`` (their mean ``empty_fp_pixel_rate``),
        ``frame_FPR`` (their mean ``empty_fp_rate``) and ``G_mIoU``, ``G_F``, ``G_mIoU_frame``, ``G_F_frame``
        (:data:`COMBINED`); a value is None when what it needs was not measured.
    """
    original = results.get('original', {}).get('metrics')
    negative = [c for c in NEGATIVE_CONDITIONS if results.get(c, {}).get('metrics')]
    out = dict(negative_conditions=negative)
    for name, key in (('FPR', 'empty_fp_pixel_rate'), ('frame_FPR', 'empty_fp_rate')):
        values = [_metric(results[c]['metrics'], key) for c in negative]
        out[name] = float(np.mean(values)) if values and None not in values else None
    for name, pos_key, neg_key in COMBINED:
        positive = _metric(original, pos_key) if original else None
        fpr = out['FPR' if neg_key == 'empty_fp_pixel_rate' else 'frame_FPR']
        out[name] = None if positive is None or fpr is None else harmonic_mean(positive, 100 - fpr)
    return out


def _test_loop(runner, dataset):
    """A test loop of ``runner`` over ``dataset`` with the config's dataloader, ``test_cfg`` and evaluator."""
    from mmengine.registry import LOOPS
    from mmengine.runner import TestLoop

    cfg = runner.cfg
    loader = copy.deepcopy(cfg.test_dataloader.to_dict())
    loader['dataset'] = dataset
    args = dict(runner=runner, dataloader=loader, evaluator=copy.deepcopy(cfg.test_evaluator))
    loop_cfg = copy.deepcopy(dict(cfg.get('test_cfg') or {}))
    return LOOPS.build(loop_cfg, default_args=args) if 'type' in loop_cfg else TestLoop(**loop_cfg, **args)


def evaluate_audio_conditions(
    runner, conditions: Sequence[str] = AUDIO_CONDITIONS, seed: int = 0, noise_dbfs: float = EVAL_NOISE_DBFS
) -> Dict[str, dict]:
    """Test ``runner``'s model on its test set under each audio condition, in one process.

    What ``Runner.test()`` does, with one test loop per condition between one ``before_run`` (then the checkpoint,
    ``load_from``, is loaded) and one ``after_run`` (which closes the visualizer). The test dataset is built once
    and wrapped per condition. ``offscreen`` is reported as not available, with the reason, when the clips' kinds
    are unknown (:func:`~projects.ccformer.datasets.audio_conditions.dataset_clip_kinds`).

    Args:
        runner: an mmengine ``Runner`` built from the test config (``load_from`` = the checkpoint).
        conditions: names from ``AUDIO_CONDITIONS``.
        seed, noise_dbfs: see :class:`~projects.ccformer.datasets.AudioConditionDataset`.

    Returns:
        ``{condition: {'status': 'ok', 'ground_truth': 'kept' | 'empty', 'metrics': {...}}}``, or
        ``{'status': 'n/a', 'reason': str}`` for an off-screen condition that cannot be built.
    """
    from mmseg.registry import DATASETS

    conditions = check_conditions(conditions)
    base = DATASETS.build(copy.deepcopy(runner.cfg.test_dataloader.dataset))
    results: Dict[str, dict] = {}
    runner.call_hook('before_run')
    runner.load_or_resume()
    try:
        for condition in conditions:
            try:
                dataset = (
                    DATASETS.build(audio_condition_dataset(base, condition, seed, noise_dbfs))
                    if condition != 'original'
                    else base
                )
            except ValueError as err:
                if condition != 'offscreen':
                    raise
                print_log(f'audio condition offscreen: n/a ({err})', logger='current', level=logging.WARNING)
                results[condition] = dict(status='n/a', reason=str(err))
                continue
            print_log(f'audio condition {condition}: testing {len(dataset)} clips', logger='current')
            # the runner's test loop is what its hooks and log processor read (runner.test_loop / test_dataloader)
            runner._test_loop = _test_loop(runner, dataset)
            metrics = runner.test_loop.run()
            results[condition] = dict(
                status='ok',
                ground_truth='empty' if condition in NEGATIVE_CONDITIONS else 'kept',
                metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.number))},
            )
    finally:
        runner.call_hook('after_run')
    return results


def _fmt(value: Optional[float], digits: int = 1) -> str:
    return 'n/a' if value is None else f'{value:.{digits}f}'


def format_table(results: Dict[str, dict], combined: Optional[dict] = None) -> str:
    """A markdown table of the per-condition figures, followed by the combined scores.

    Under the negative conditions every frame's ground truth is empty, so mIoU (background accuracy) and F
    (undefined) are not shown; ``frames with a mask`` is ``empty_fp_rate`` and ``FPR`` is ``empty_fp_pixel_rate``,
    both over the frames whose ground truth is empty (all frames under negative audio).
    """
    lines = [
        '| audio | ground truth | mIoU | F | empty-GT frames | frames with a mask (%) | FPR (% pixels) |',
        '|---|---|---|---|---|---|---|',
    ]
    for condition, res in results.items():
        name = CONDITION_NAMES.get(condition, condition)
        if res.get('status') != 'ok':
            lines.append(f'| {name} | | n/a | n/a | n/a | n/a | n/a ({res.get("reason", "")}) |')
            continue
        m = res['metrics']
        negative = condition in NEGATIVE_CONDITIONS
        num_empty = _metric(m, 'num_empty_frames')
        cells = [
            name,
            'empty' if negative else 'kept',
            '-' if negative else _fmt(_metric(m, 'mIoU')),
            '-' if negative else _fmt(_metric(m, 'Fscore')),
            'n/a' if num_empty is None else str(int(num_empty)),
            _fmt(_metric(m, 'empty_fp_rate')),
            _fmt(_metric(m, 'empty_fp_pixel_rate'), 2),
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    if combined is not None:
        used = ', '.join(combined['negative_conditions']) or 'none'
        lines += [
            '',
            f'Combined (negative conditions: {used}; FPR {_fmt(combined["FPR"], 2)}, frame FPR '
            f'{_fmt(combined["frame_FPR"])}): G-mIoU {_fmt(combined["G_mIoU"])}, G-F '
            f'{_fmt(combined["G_F"])}; frame-level G-mIoU {_fmt(combined["G_mIoU_frame"])}, G-F '
            f'{_fmt(combined["G_F_frame"])}.',
        ]
    return '\n'.join(lines)


def empty_output_summary(results: Dict[str, dict]) -> dict:
    """Whether the model stays empty when nothing on screen sounds, in numbers and in words.

    Reads ``empty_fp_rate`` of ``original`` (frames whose ground truth is empty with the true audio: silent or
    off-screen seconds) and of each negative condition, and compares them with :data:`EMPTY_GOALS`. The text also
    gives the true-audio mIoU and F, since a model that never predicts anything stays empty too.

    Returns:
        dict with ``stays_empty`` (True / False, None when nothing was measured), ``masked_percent``
        (``{condition: empty_fp_rate}``), ``goals`` and ``text`` (sentences for the summary).
    """
    masked: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    for condition in EMPTY_GOALS:
        m = results.get(condition, {}).get('metrics')
        if not m or not _metric(m, 'num_empty_frames'):
            continue
        masked[condition] = _metric(m, 'empty_fp_rate')
        counts[condition] = int(_metric(m, 'num_empty_frames'))
    sentences: List[str] = []
    if 'original' in masked:
        rate, num = masked['original'], counts['original']
        sentences.append(
            f'With the true audio the model stays empty on {100 - rate:.1f}% of the {num} silent or '
            f'off-screen frames (a mask on {round(rate * num / 100)} of them).'
        )
    negative = [c for c in NEGATIVE_CONDITIONS if c in masked]
    if negative:
        listing = ', '.join(f'{masked[c]:.1f}% with {CONDITION_NAMES[c]}' for c in negative)
        sentences.append(f'With negative audio (nothing on screen sounds) it puts a mask on {listing}.')
    for c in NEGATIVE_CONDITIONS:
        if results.get(c, {}).get('status') == 'n/a':
            sentences.append(f'{CONDITION_NAMES[c].capitalize()}: not measured ({results[c]["reason"]}).')
    failed = [c for c in masked if masked[c] > EMPTY_GOALS[c]]
    stays_empty = None if not masked else not failed
    if stays_empty is not None:
        goals = ', '.join(f'{CONDITION_NAMES[c]} {EMPTY_GOALS[c]:.0f}%' for c in masked)
        verdict = 'yes' if stays_empty else 'no'
        sentences.insert(
            0,
            f'Does the model stay empty when nothing on screen sounds? {verdict} (at most this share '
            f'of frames may get a mask: {goals}).',
        )
    original = results.get('original', {}).get('metrics')
    if original and _metric(original, 'mIoU') is not None and _metric(original, 'Fscore') is not None:
        # staying empty is only worth something next to segmenting what does sound
        miou, f_score = _metric(original, 'mIoU'), _metric(original, 'Fscore')
        sentences.append(
            f'Where something on screen sounds (true audio) it scores mIoU {miou:.1f}, F {f_score:.1f}'
            + (': it segments nothing there either.' if f_score == 0 else '.')
        )
    return dict(
        stays_empty=stays_empty,
        masked_percent=masked,
        goals={c: EMPTY_GOALS[c] for c in masked},
        text=' '.join(sentences),
    )


def robustness_report(results: Dict[str, dict], **info) -> dict:
    """The JSON report: ``info`` (config, checkpoint, ...), per-condition ``conditions``, ``combined`` and
    ``empty_output`` (:func:`empty_output_summary`)."""
    return dict(info, conditions=results, combined=combined_scores(results), empty_output=empty_output_summary(results))


def check_conditions(conditions: Iterable[str]) -> List[str]:
    """The requested conditions, in the canonical order, without repeats; an unknown name is an error."""
    conditions = list(conditions)
    unknown = [c for c in conditions if c not in AUDIO_CONDITIONS]
    if unknown:
        raise ValueError(f'audio condition(s) {unknown} unknown; use some of {AUDIO_CONDITIONS}')
    return [c for c in AUDIO_CONDITIONS if c in conditions]
