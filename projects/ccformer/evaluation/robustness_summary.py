"""Several robustness reports (one per seed / run) summarised: mean, std, min and max of every figure.

The reports are the JSON files of ``tools/analysis_tools/robustness.py``. Each is reduced to flat figures
(:func:`report_figures`): per condition the true / shuffled mIoU and F (where the ground truth is kept), the share of
empty-ground-truth frames with a mask and the pixel FPR; the listening gap (true - shuffled); the combined scores.
Reports are grouped by a label given by the user or, without one, by what was trained and what was tested
(:func:`report_group`), and each group's figures are summarised over its runs (:func:`summarize_reports`).
"""

import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .robustness import find_metric

#: Figures of a report in table order: (key, what it is). ``C`` stands for each condition present.
FIGURE_DOCS = (
    ('C/mIoU', 'mIoU (%) with the condition (conditions whose ground truth is kept)'),
    ('C/Fscore', 'F-score (%) with the condition (ground truth kept)'),
    ('C/frames_masked', 'frames with a mask among those whose ground truth is empty (%), empty_fp_rate'),
    ('C/pixel_FPR', 'pixels predicted foreground in those frames (%), empty_fp_pixel_rate'),
    ('gap/mIoU', 'mIoU with the true audio minus mIoU with shuffled audio'),
    ('gap/Fscore', 'the same for F'),
    ('combined/...', 'FPR, frame_FPR, G_mIoU, G_F, G_mIoU_frame, G_F_frame of the report'),
)
COMBINED_KEYS = ('FPR', 'frame_FPR', 'G_mIoU', 'G_F', 'G_mIoU_frame', 'G_F_frame')
STATS = ('mean', 'std', 'min', 'max', 'n')


def _metric(metrics: dict, key: str) -> Optional[float]:
    """:func:`find_metric`, None when not finite (a metric over no frames)."""
    value = find_metric(metrics, key)
    return value if value is not None and math.isfinite(value) else None


def read_json(path: str, what: str, hint: str):
    """The JSON content of ``path``; errors name the file (``what`` it should be) and ``hint`` (how to fix it)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError as err:
        raise FileNotFoundError(f'{what} {path!r} does not exist; check the path') from err
    except json.JSONDecodeError as err:
        raise ValueError(f'{path}: not valid JSON ({err}); {hint}') from err


def load_report(path: str) -> dict:
    """Read a robustness JSON report; an error names the file when it is not one."""
    report = read_json(path, 'robustness report', 'pass the reports written by robustness.py --out')
    if not isinstance(report, dict) or not isinstance(report.get('conditions'), dict):
        raise ValueError(
            f'{path}: not a robustness report (no "conditions" object); pass the JSON files written by '
            f'tools/analysis_tools/robustness.py'
        )
    return report


def report_figures(report: dict) -> Dict[str, float]:
    """The flat figures of one report (module docstring); a figure that was not measured is left out.

    Under a condition whose ground truth is empty (``ground_truth`` ``'empty'``) mIoU and F are not figures: they
    would measure background accuracy, not segmentation.
    """
    out: Dict[str, float] = {}
    for condition, res in report['conditions'].items():
        if not isinstance(res, dict) or res.get('status') != 'ok':
            continue
        m = res.get('metrics') or {}
        keys = []
        if res.get('ground_truth', 'kept') != 'empty':
            keys += [('mIoU', 'mIoU'), ('Fscore', 'Fscore')]
        if _metric(m, 'num_empty_frames'):  # rates over no frame are not figures
            keys += [('frames_masked', 'empty_fp_rate'), ('pixel_FPR', 'empty_fp_pixel_rate')]
        for name, key in keys:
            value = _metric(m, key)
            if value is not None:
                out[f'{condition}/{name}'] = value
    for key in ('mIoU', 'Fscore'):
        if f'original/{key}' in out and f'shuffled/{key}' in out:
            out[f'gap/{key}'] = out[f'original/{key}'] - out[f'shuffled/{key}']
    combined = report.get('combined') or {}
    for key in COMBINED_KEYS:
        if combined.get(key) is not None:
            out[f'combined/{key}'] = float(combined[key])
    return out


def report_group(report: dict) -> str:
    """Default group of a report: its config, what it was trained on (when the report knows) and tested on."""
    config = osp.splitext(osp.basename(str(report.get('config') or '?')))[0]
    tested = (report.get('tested_on') or {}).get('data_root') or report.get('data_root') or 'config data'
    trained = (report.get('trained_on') or {}).get('data_root')
    group = f'{config}: trained on {trained}, tested on {tested}' if trained else f'{config} on {tested}'
    if report.get('offscreen_audio'):
        group += f' (off-screen recordings {report["offscreen_audio"]})'
    return group


def summarize(values: Sequence[float]) -> dict:
    """``mean``, ``std`` (sample standard deviation, ddof 1; None for one value), ``min``, ``max`` and ``n``."""
    arr = np.asarray(values, dtype=np.float64)
    return dict(
        mean=float(arr.mean()),
        std=float(arr.std(ddof=1)) if len(arr) > 1 else None,
        min=float(arr.min()),
        max=float(arr.max()),
        n=int(len(arr)),
    )


def _order(key: str, conditions: List[str]) -> Tuple:
    head, _, name = key.partition('/')
    names = ('mIoU', 'Fscore', 'frames_masked', 'pixel_FPR')
    if head in conditions:
        return (0, conditions.index(head), names.index(name) if name in names else len(names), name)
    if head == 'gap':
        return (1, 0, names.index(name) if name in names else len(names), name)
    return (2, 0, COMBINED_KEYS.index(name) if name in COMBINED_KEYS else len(COMBINED_KEYS), name)


def summarize_reports(runs: Sequence[Tuple[str, str, dict]]) -> Dict[str, dict]:
    """Summaries of labelled reports.

    Args:
        runs: ``(group label, path, report)`` per run; reports of one label are summarised together.

    Returns:
        ``{label: {'runs': [paths], 'seeds': [audio seeds], 'figures': {figure: summarize(...)}}}``, labels in the
        order first seen, figures in table order. A figure missing from some runs is summarised over those
        that have it (its ``n`` says how many).
    """
    groups: Dict[str, dict] = {}
    for label, path, report in runs:
        group = groups.setdefault(label, dict(runs=[], seeds=[], values={}, conditions=[]))
        group['runs'].append(path)
        group['seeds'].append(report.get('audio_seed'))
        for c in report['conditions']:
            if c not in group['conditions']:
                group['conditions'].append(c)
        for key, value in report_figures(report).items():
            group['values'].setdefault(key, []).append(value)
    out = {}
    for label, group in groups.items():
        keys = sorted(group['values'], key=lambda k: _order(k, group['conditions']))
        out[label] = dict(
            runs=group['runs'],
            seeds=group['seeds'],
            figures={k: summarize(group['values'][k]) for k in keys},
        )
    return out


def _fmt(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.1f}'


def format_summary(summary: Dict[str, dict]) -> str:
    """Markdown: one table per group, a row per figure with mean ± std, min, max and the number of runs."""
    blocks = []
    for label, group in summary.items():
        n = len(group['runs'])
        lines = [
            f'### {label}',
            '',
            f'{n} run{"s" if n != 1 else ""}'
            + (' (fewer than 3: the spread is not meaningful)' if n < 3 else '')
            + ': '
            + ', '.join(group['runs']),
            '',
            '| figure | mean | std | min | max | runs |',
            '|---|---|---|---|---|---|',
        ]
        for key, s in group['figures'].items():
            lines.append(
                f'| {key} | {_fmt(s["mean"])} | {_fmt(s["std"])} | {_fmt(s["min"])} | {_fmt(s["max"])} | {s["n"]} |'
            )
        blocks.append('\n'.join(lines))
    return '\n\n'.join(blocks)
