"""Reading, combining and printing benchmark records: the console line of a record, the per-variant summary of a
sweep with several rounds, and the merged table of several reports (``tools/analysis_tools/benchmark_table.py``).

A record is one dict of ``tools/analysis_tools/benchmark.py``'s ``results`` (``part``, ``mode``, ``amp``,
``batch_size``, ``status``, ``median_s``, ``frames_per_s`` ... see :mod:`.runner`).
"""

import json
import os
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..utils.atomic import write_text

#: what makes records the same variant in :func:`summarize_rounds`
SUMMARY_KEYS = (
    'part',
    'mode',
    'amp',
    'batch_size',
    'compile',
    'backend',
    'memory_format',
    'ort_opt_level',
    'ort_precision',
    'threads',
    'forward_mode',
)
#: keys that make a record the backbone twin of a model record across reports (:func:`merge_reports`)
MATCH_KEYS = ('mode', 'amp', 'batch_size', 'compile', 'backend', 'memory_format', 'threads')


def write_json(report: Dict[str, Any], path: Optional[str]) -> None:
    """Write ``report`` to ``path`` atomically (a temporary file renamed over it); nothing when ``path`` is None."""
    if not path:
        return
    write_text(path, json.dumps(report, indent=1))


def add_model_over_backbone(records: List[Dict[str, Any]], keys: Sequence[str] = MATCH_KEYS) -> None:
    """Add ``model_over_backbone`` (the ratio of frames/s) to every ``ok`` model record whose backbone twin (an
    ``ok`` backbone record equal in ``keys``) is in ``records``."""
    for rec in records:
        if rec.get('part') != 'model' or rec.get('status') != 'ok':
            continue
        for other in records:
            if (
                other.get('part') == 'backbone'
                and other.get('status') == 'ok'
                and all(other.get(k) == rec.get(k) for k in keys)
            ):
                rec['model_over_backbone'] = rec['frames_per_s'] / other['frames_per_s']


def summarize_rounds(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per variant: the median over rounds of the per-round medians, and ``speedup_vs_eager``: the eager
    (contiguous, not compiled) PyTorch model's median over this one, same part, mode, precision, batch and threads."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for rec in results:
        if rec.get('status') == 'ok':
            groups.setdefault(tuple(rec.get(k) for k in SUMMARY_KEYS), []).append(rec)
    summary = []
    for key, recs in groups.items():
        medians = [r['median_s'] for r in recs]
        entry = dict(
            zip(SUMMARY_KEYS, key), rounds=len(recs), median_s=statistics.median(medians), per_round_median_s=medians
        )
        entry['s_per_clip'] = entry['median_s'] / entry['batch_size']
        if any('max_abs_diff' in r for r in recs):
            entry['max_abs_diff'] = max(r['max_abs_diff'] for r in recs)
            entry['mask_agreement'] = min(r['mask_agreement'] for r in recs)
        summary.append(entry)
    for entry in summary:
        for ref in summary:
            if (
                ref['backend'] == 'pytorch'
                and ref['memory_format'] == 'contiguous'
                and not ref['compile']
                and all(ref[k] == entry[k] for k in ('part', 'mode', 'amp', 'batch_size', 'threads'))
            ):
                entry['speedup_vs_eager'] = ref['median_s'] / entry['median_s']
    return summary


def variant_name(rec: Dict[str, Any]) -> str:
    """``pytorch``, ``channels_last`` or ``ort-<level>[-int8]``."""
    if rec.get('backend') == 'onnxruntime':
        return f"ort-{rec['ort_opt_level']}" + ('-int8' if rec.get('ort_precision') == 'int8' else '')
    return 'channels_last' if rec.get('memory_format') == 'channels_last' else 'pytorch'


def format_record(rec: Dict[str, Any]) -> str:
    """One console line: the setting, then ms per iteration (p10, p90), frames/s, clips/s, s per clip, the first
    call and the peak memory; or the status and error of a failed record."""
    head = (
        f"{rec['part']:8s} {rec['mode']:5s} {rec['amp']:4s} bs={rec['batch_size']:<3d} "
        f"compile={'y' if rec['compile'] else 'n'}"
    )
    if (
        rec.get('threads') is not None
        or rec.get('backend', 'pytorch') != 'pytorch'
        or rec.get('memory_format') not in (None, 'contiguous')
    ):
        head += f" {variant_name(rec):13s} threads={rec.get('threads')}"
    if rec['status'] != 'ok':
        return f"{head}  {rec['status'].upper()}: {rec.get('error', '')}"
    mem = f"  peak {rec['peak_mem_bytes'] / 1e9:6.2f} GB" if 'peak_mem_bytes' in rec else ''
    return (
        f"{head}  {rec['median_s'] * 1e3:9.2f} ms/it (p10 {rec['p10_s'] * 1e3:.2f}, p90 {rec['p90_s'] * 1e3:.2f})"
        f"  {rec['frames_per_s']:9.1f} frames/s  {rec['clips_per_s']:8.2f} clips/s  "
        f"{rec['s_per_clip']:.4f} s/clip  first {rec['first_call_s']:.1f} s{mem}"
    )


def format_summary(entry: Dict[str, Any]) -> str:
    """One console line of a :func:`summarize_rounds` entry."""
    speedup = f"  {entry['speedup_vs_eager']:.2f}x eager" if 'speedup_vs_eager' in entry else ''
    diff = (
        f"  max|diff| {entry['max_abs_diff']:.2g}, masks agree {100 * entry['mask_agreement']:.3f}%"
        if 'max_abs_diff' in entry
        else ''
    )
    return (
        f"summary {entry['part']:8s} {entry['mode']} {entry['amp']} bs={entry['batch_size']} "
        f"{variant_name(entry):13s} threads={entry['threads']}: {entry['s_per_clip']:.4f} s/clip "
        f"(median of {entry['rounds']} rounds){speedup}{diff}"
    )


# ----------------------------------------------------------------------------------------------- merged table


def load_reports(paths: Sequence[str]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], Dict[str, Any]]:
    """``(records, sources, env)``: every record with its ``source`` file, one entry per file (``error`` for
    files that cannot be read), and the environment of the first readable file."""
    records, sources, env = [], [], {}
    for path in paths:
        try:
            with open(path) as f:
                report = json.load(f)
            results = report['results']
        except (OSError, ValueError, KeyError, TypeError) as err:
            sources.append(dict(file=path, error=f'{type(err).__name__}: {err}'))
            continue
        sources.append(dict(file=path, records=len(results), argv=report.get('argv')))
        env = env or report.get('env', {})
        for rec in results:
            records.append(dict(rec, source=os.path.basename(path)))
    return records, sources, env


def read_steps(path: Optional[str]) -> List[Dict[str, Any]]:
    """``steps.tsv`` lines of ``run_gpu_benchmarks.sh`` -> ``[{name, rc, seconds, limit_s, status}]`` (rc 124:
    killed at its time limit)."""
    if not path or not os.path.isfile(path):
        return []
    steps = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip('\n').split('\t')
            if len(parts) == 4:
                name, rc, seconds, limit = parts
                steps.append(
                    dict(
                        name=name,
                        rc=int(rc),
                        seconds=int(seconds),
                        limit_s=int(limit),
                        status='ok' if rc == '0' else ('timeout' if rc == '124' else 'failed'),
                    )
                )
    return steps


def _memory(rec: Dict[str, Any]) -> str:
    if 'peak_mem_bytes' in rec:
        return f"{rec['peak_mem_bytes'] / 2**30:.2f} GiB (CUDA)"
    if 'max_rss_bytes' in rec:
        return f"{rec['max_rss_bytes'] / 2**30:.2f} GiB (RSS)"
    return ''


def markdown(
    records: List[Dict[str, Any]], steps: List[Dict[str, Any]], env: Dict[str, Any], budget: Optional[float]
) -> str:
    """The table of the records (and of the steps): one row per record, failed ones with their status."""
    device = env.get('gpu') or f"CPU ({env.get('cpu_count')} cores)"
    lines = [
        f"Device: {device}; torch {env.get('torch')}, mmcv {env.get('mmcv')}.",
        '',
        '| part | mode | precision | clips | compile | ms / it (p10-p90) | frames/s | clips/s | model / backbone '
        '| peak memory | file |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    order = sorted(
        records, key=lambda r: (r.get('mode', ''), bool(r.get('compile')), r.get('batch_size', 0), r.get('part', ''))
    )
    for r in order:
        compiled = (r.get('compile_mode') or r.get('compile_backend') or 'yes') if r.get('compile') else 'eager'
        head = f"| {r.get('part')} | {r.get('mode')} | {r.get('amp')} | {r.get('batch_size')} | {compiled} |"
        if r.get('status') != 'ok':
            lines.append(f"{head} **{r.get('status')}**: {r.get('error', '')[:120]} | | | | | {r['source']} |")
            continue
        ratio = f"{r['model_over_backbone']:.2f}" if 'model_over_backbone' in r else ''
        lines.append(
            f"{head} {r['median_s'] * 1e3:.1f} ({r['p10_s'] * 1e3:.1f}-{r['p90_s'] * 1e3:.1f}) | "
            f"{r['frames_per_s']:.0f} | {r['clips_per_s']:.1f} | {ratio} | {_memory(r)} | {r['source']} |"
        )
    if steps:
        total = [s['seconds'] for s in steps if s['name'] == 'total']
        lines += [
            '',
            'Steps'
            + (f' ({total[-1]} s in all before this summary' if total else ' (')
            + (f', budget {budget:.0f} s' if budget else '')
            + '; background steps count from the start of '
            'their group):',
            '',
            '| step | status | seconds | limit |',
            '|---|---|---|---|',
        ]
        lines += [f"| {s['name']} | {s['status']} (rc {s['rc']}) | {s['seconds']} | {s['limit_s']} |" for s in steps]
    return '\n'.join(lines) + '\n'


def merge_reports(
    paths: Sequence[str], steps_file: Optional[str] = None, budget: Optional[float] = None
) -> Tuple[Dict[str, Any], str]:
    """Merge ``benchmark.py`` JSON reports (and ``run_gpu_benchmarks.sh``'s ``steps.tsv``) into one report and its
    markdown table; a file that cannot be read is listed with its error, a missing record is not invented.

    Returns:
        tuple: the merged report (``env``, ``budget_s``, ``sources``, ``steps``, ``results``) and the markdown.
    """
    records, sources, env = load_reports(paths)
    add_model_over_backbone(records, MATCH_KEYS)
    steps = read_steps(steps_file)
    merged = dict(env=env, budget_s=budget, sources=sources, steps=steps, results=records)
    return merged, markdown(records, steps, env, budget)
