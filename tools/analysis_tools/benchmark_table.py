"""Merge ``benchmark.py`` JSON reports into one JSON and one markdown table (the GPU check's summary).

    python tools/analysis_tools/benchmark_table.py OUT/*.json [--steps OUT/steps.tsv] [--budget 480] \\
        --json OUT/gpu_check.json --markdown OUT/gpu_check.md

One row per record: part, mode, precision, clips, compile, median ms per iteration (p10-p90), frames/s, clips/s,
model / backbone frames/s (the backbone record of the same setting, from any of the files), and peak memory (CUDA:
``peak_mem_bytes`` of the phase; CPU: the process's ``max_rss_bytes``). ``--steps`` adds the steps' exit status and
seconds (``run_gpu_benchmarks.sh`` writes ``NAME<TAB>rc<TAB>seconds<TAB>limit`` lines); a file that cannot be read
is listed with its error, and a missing record is not invented.
"""

import argparse
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

MATCH_KEYS = ('mode', 'amp', 'batch_size', 'compile', 'backend', 'memory_format', 'threads')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('reports', nargs='*', help='benchmark.py --json files')
    parser.add_argument('--steps', default=None, help='steps.tsv of run_gpu_benchmarks.sh')
    parser.add_argument('--budget', type=float, default=None, help='seconds the run was allowed (for the record)')
    parser.add_argument('--json', required=True, help='merged JSON to write')
    parser.add_argument('--markdown', required=True, help='markdown table to write')
    return parser.parse_args(argv)


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
    """``steps.tsv`` lines -> ``[{name, rc, seconds, limit_s}]`` (rc 124: killed at its time limit)."""
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


def add_backbone_ratios(records: List[Dict[str, Any]]) -> None:
    """``model_over_backbone`` (frames/s) for model records whose backbone twin is in any of the files."""
    for rec in records:
        if rec.get('part') != 'model' or rec.get('status') != 'ok':
            continue
        for other in records:
            if (
                other.get('part') == 'backbone'
                and other.get('status') == 'ok'
                and all(other.get(k) == rec.get(k) for k in MATCH_KEYS)
            ):
                rec['model_over_backbone'] = rec['frames_per_s'] / other['frames_per_s']


def _memory(rec: Dict[str, Any]) -> str:
    if 'peak_mem_bytes' in rec:
        return f"{rec['peak_mem_bytes'] / 2**30:.2f} GiB (CUDA)"
    if 'max_rss_bytes' in rec:
        return f"{rec['max_rss_bytes'] / 2**30:.2f} GiB (RSS)"
    return ''


def markdown(
    records: List[Dict[str, Any]], steps: List[Dict[str, Any]], env: Dict[str, Any], budget: Optional[float]
) -> str:
    """The table of the records (and of the steps)."""
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


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    records, sources, env = load_reports(args.reports)
    add_backbone_ratios(records)
    steps = read_steps(args.steps)
    merged = dict(env=env, budget_s=args.budget, sources=sources, steps=steps, results=records)
    for path, text in (
        (args.json, json.dumps(merged, indent=1)),
        (args.markdown, markdown(records, steps, env, args.budget)),
    ):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    print(markdown(records, steps, env, args.budget), end='')
    return merged


if __name__ == '__main__':
    main()
