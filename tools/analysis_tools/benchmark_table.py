"""Merge ``benchmark.py`` JSON reports into one JSON and one markdown table (the GPU check's summary; command line
of ``projects.ccformer.benchmark.merge_reports``).

    python tools/analysis_tools/benchmark_table.py OUT/*.json [--steps OUT/steps.tsv] [--budget 480] \\
        --json OUT/gpu_check.json --markdown OUT/gpu_check.md

One row per record: part, mode, precision, clips, compile, median ms per iteration (p10-p90), frames/s, clips/s,
model / backbone frames/s (the backbone record of the same setting, from any of the files), and peak memory (CUDA:
``peak_mem_bytes`` of the phase; CPU: the process's ``max_rss_bytes``). ``--steps`` adds the steps' exit status and
seconds (``run_gpu_benchmarks.sh`` writes ``NAME<TAB>rc<TAB>seconds<TAB>limit`` lines); a file that cannot be read
is listed with its error, and a missing record is not invented.
"""

import argparse
import os
from typing import Any, Dict, Optional, Sequence

from projects.ccformer.benchmark import merge_reports, write_json
from projects.ccformer.utils.atomic import write_text


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('reports', nargs='*', help='benchmark.py --json files')
    parser.add_argument('--steps', default=None, help='steps.tsv of run_gpu_benchmarks.sh')
    parser.add_argument('--budget', type=float, default=None, help='seconds the run was allowed (for the record)')
    parser.add_argument('--json', required=True, help='merged JSON to write')
    parser.add_argument('--markdown', required=True, help='markdown table to write')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Write the merged JSON and the markdown table, print the table; return the merged report."""
    args = parse_args(argv)
    merged, table = merge_reports(args.reports, args.steps, args.budget)
    write_json(merged, args.json)
    os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
    write_text(args.markdown, table)
    print(table, end='')
    return merged


if __name__ == '__main__':
    main()
