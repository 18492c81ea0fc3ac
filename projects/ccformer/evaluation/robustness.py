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
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from ..datasets.audio_conditions import (
    AUDIO_CONDITIONS,
    EMPTY_GT_CONDITIONS,
    EVAL_NOISE_DBFS,
    RECORDED_CONDITION,
)

#: What the table calls each condition.
CONDITION_NAMES = dict(
    original='original audio',
    shuffled='shuffled (another clip)',
    silence='silence',
    noise='noise',
    offscreen='off-screen sound',
    offscreen_recorded='off-screen recordings',
)
#: The project's goals for empty output (percent of frames with any mask, at most): frames whose ground truth is
#: empty with the true audio (``original``), and every frame under each negative condition.
EMPTY_GOALS = dict(original=20.0, silence=5.0, noise=10.0, offscreen=20.0, offscreen_recorded=20.0)
#: (combined key, positive metric key, negative metric key)
COMBINED = (
    ('G_mIoU', 'mIoU', 'empty_fp_pixel_rate'),
    ('G_F', 'Fscore', 'empty_fp_pixel_rate'),
    ('G_mIoU_frame', 'mIoU', 'empty_fp_rate'),
    ('G_F_frame', 'Fscore', 'empty_fp_rate'),
)


def audio_condition_dataset(
    dataset, condition: str, seed: int = 0, noise_dbfs: float = EVAL_NOISE_DBFS, sound_bank=None
):
    """``dataset`` (config dict or instance) heard under ``condition``: itself for ``original``, else an
    ``AudioConditionDataset`` config wrapping it. ``sound_bank`` (a folder, a dict of ``SoundBank`` arguments or a
    bank) is the recordings of ``offscreen_recorded`` and is needed there only."""
    if condition not in AUDIO_CONDITIONS:
        raise ValueError(f'audio condition {condition!r} is unknown; use one of {AUDIO_CONDITIONS}')
    if condition == RECORDED_CONDITION and sound_bank is None:
        raise ValueError(f'audio condition {condition} needs a folder of recordings: --offscreen-audio DIR')
    if condition == 'original':
        return dataset
    cfg = dict(
        type='AudioConditionDataset', dataset=dataset, condition=condition, seed=int(seed), noise_dbfs=float(noise_dbfs)
    )
    if condition == RECORDED_CONDITION:
        cfg['sound_bank'] = sound_bank
    return cfg


def find_metric(metrics: dict, key: str) -> Optional[float]:
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
        ``frame_FPR`` (their mean ``empty_fp_rate``), ``G_mIoU``, ``G_F``, ``G_mIoU_frame``, ``G_F_frame``
        (:data:`COMBINED`) and ``mIoU_gap`` / ``Fscore_gap`` (true minus shuffled audio); a value is None when
        what it needs was not measured.
    """
    original = results.get('original', {}).get('metrics')
    shuffled = results.get('shuffled', {}).get('metrics')
    negative = [c for c in EMPTY_GT_CONDITIONS if results.get(c, {}).get('metrics')]
    out = dict(negative_conditions=negative)
    for name, key in (('FPR', 'empty_fp_pixel_rate'), ('frame_FPR', 'empty_fp_rate')):
        values = [find_metric(results[c]['metrics'], key) for c in negative]
        out[name] = float(np.mean(values)) if values and None not in values else None
    for name, pos_key, neg_key in COMBINED:
        positive = find_metric(original, pos_key) if original else None
        fpr = out['FPR' if neg_key == 'empty_fp_pixel_rate' else 'frame_FPR']
        out[name] = None if positive is None or fpr is None else harmonic_mean(positive, 100 - fpr)
    for key in ('mIoU', 'Fscore'):
        true = find_metric(original, key) if original else None
        other = find_metric(shuffled, key) if shuffled else None
        out[f'{key}_gap'] = None if true is None or other is None else true - other
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
    runner,
    conditions: Sequence[str] = AUDIO_CONDITIONS,
    seed: int = 0,
    noise_dbfs: float = EVAL_NOISE_DBFS,
    sound_bank=None,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, dict]:
    """Test ``runner``'s model on its test set under each audio condition, in one process.

    What ``Runner.test()`` does, with one test loop per condition between one ``before_run`` (then the checkpoint,
    ``load_from``, is loaded) and one ``after_run`` (which closes the visualizer). The test dataset is built once
    and wrapped per condition. ``offscreen`` is reported as not available, with the reason, when the clips' kinds
    are unknown (:func:`~projects.ccformer.datasets.audio_conditions.dataset_clip_kinds`). Each condition's
    figures are logged on a line naming it (``audio condition <name>: ...``).

    Args:
        runner: an mmengine ``Runner`` built from the test config (``load_from`` = the checkpoint).
        conditions: names from ``AUDIO_CONDITIONS``.
        seed, noise_dbfs, sound_bank: see :class:`~projects.ccformer.datasets.AudioConditionDataset`;
            ``sound_bank`` (needed by ``offscreen_recorded`` only) is built once.
        progress: called with a line of text before each condition is tested (e.g. ``print``).

    Returns:
        ``{condition: {'status': 'ok', 'ground_truth': 'kept' | 'empty', 'clips': int, 'metrics': {...}}}``, or
        ``{'status': 'n/a', 'reason': str}`` for an off-screen condition that cannot be built.
    """
    from mmseg.registry import DATASETS

    from ..datasets.sound_bank import build_sound_bank

    conditions = check_conditions(conditions)
    if RECORDED_CONDITION in conditions:
        if sound_bank is None:
            raise ValueError(
                f'audio condition {RECORDED_CONDITION} needs a folder of recordings: --offscreen-audio DIR'
            )
        sound_bank = build_sound_bank(sound_bank)
    base = DATASETS.build(copy.deepcopy(runner.cfg.test_dataloader.dataset))
    results: Dict[str, dict] = {}
    runner.call_hook('before_run')
    runner.load_or_resume()
    try:
        for condition in conditions:
            try:
                bank = sound_bank if condition == RECORDED_CONDITION else None
                dataset = (
                    DATASETS.build(audio_condition_dataset(base, condition, seed, noise_dbfs, bank))
                    if condition != 'original'
                    else base
                )
            except ValueError as err:
                if condition != 'offscreen':
                    raise
                print_log(f'audio condition offscreen: n/a ({err})', logger='current', level=logging.WARNING)
                results[condition] = dict(status='n/a', reason=str(err))
                continue
            line = f'audio condition {condition} ({CONDITION_NAMES[condition]}): testing {len(dataset)} clips'
            print_log(line, logger='current')
            if progress is not None:
                progress(line)
            # the runner's test loop is what its hooks and log processor read (runner.test_loop / test_dataloader)
            runner._test_loop = _test_loop(runner, dataset)
            metrics = runner.test_loop.run()
            results[condition] = dict(
                status='ok',
                ground_truth='empty' if condition in EMPTY_GT_CONDITIONS else 'kept',
                clips=len(dataset),
                metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.number))},
            )
            print_log(f'audio condition {condition_line(condition, results[condition])}', logger='current')
    finally:
        runner.call_hook('after_run')
    return results


def _fmt(value: Optional[float], digits: int = 1) -> str:
    return 'n/a' if value is None else f'{value:.{digits}f}'


def condition_line(condition: str, res: dict) -> str:
    """One condition's figures in words, labelled with the condition; no mIoU / F where the ground truth is empty."""
    name = f'{condition} ({CONDITION_NAMES.get(condition, condition)})'
    if res.get('status') != 'ok':
        return f'{name}: not measured ({res.get("reason", "")})'
    m = res['metrics']
    num_empty = find_metric(m, 'num_empty_frames')
    masked = (
        f'{_fmt(find_metric(m, "empty_fp_rate"))}% of them with a mask, pixel FPR '
        f'{_fmt(find_metric(m, "empty_fp_pixel_rate"), 2)}%'
        if num_empty
        else 'none to judge'
    )
    frames = f'{int(num_empty or 0)} empty-ground-truth frames, {masked}'
    if condition in EMPTY_GT_CONDITIONS:
        return f'{name}: ground truth empty (mIoU and F not defined); {frames}'
    return f'{name}: mIoU {_fmt(find_metric(m, "mIoU"))}, F {_fmt(find_metric(m, "Fscore"))}; {frames}'


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
        negative = condition in EMPTY_GT_CONDITIONS
        num_empty = find_metric(m, 'num_empty_frames')
        cells = [
            name,
            'empty' if negative else 'kept',
            '-' if negative else _fmt(find_metric(m, 'mIoU')),
            '-' if negative else _fmt(find_metric(m, 'Fscore')),
            'n/a' if num_empty is None else str(int(num_empty)),
            _fmt(find_metric(m, 'empty_fp_rate')),
            _fmt(find_metric(m, 'empty_fp_pixel_rate'), 2),
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    if combined is not None:
        used = ', '.join(combined['negative_conditions']) or 'none'
        lines.append('')
        if combined.get('mIoU_gap') is not None:
            lines.append(
                f'Listening (true - shuffled audio): mIoU gap {_fmt(combined["mIoU_gap"])}, F gap '
                f'{_fmt(combined.get("Fscore_gap"))}.'
            )
        lines += [
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
        if not m or not find_metric(m, 'num_empty_frames'):
            continue
        masked[condition] = find_metric(m, 'empty_fp_rate')
        counts[condition] = int(find_metric(m, 'num_empty_frames'))
    sentences: List[str] = []
    if 'original' in masked:
        rate, num = masked['original'], counts['original']
        sentences.append(
            f'With the true audio the model stays empty on {100 - rate:.1f}% of the {num} silent or '
            f'off-screen frames (a mask on {round(rate * num / 100)} of them).'
        )
    negative = [c for c in EMPTY_GT_CONDITIONS if c in masked]
    if negative:
        listing = ', '.join(f'{masked[c]:.1f}% with {CONDITION_NAMES[c]}' for c in negative)
        sentences.append(f'With negative audio (nothing on screen sounds) it puts a mask on {listing}.')
    for c in EMPTY_GT_CONDITIONS:
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
    if original and find_metric(original, 'mIoU') is not None and find_metric(original, 'Fscore') is not None:
        # staying empty is only worth something next to segmenting what does sound
        miou, f_score = find_metric(original, 'mIoU'), find_metric(original, 'Fscore')
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
