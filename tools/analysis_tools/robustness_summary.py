"""Summarise several robustness reports (one per seed / run): mean, std, min and max of every figure.

Usage::

    python tools/analysis_tools/robustness_summary.py work_dirs/seed*/robustness.json \\
        [--out summary.json] [--markdown summary.md]
    python tools/analysis_tools/robustness_summary.py robust=r/seed0.json robust=r/seed1.json paper=p/seed0.json ...

Each argument is a report written by ``tools/analysis_tools/robustness.py --out``, optionally prefixed by a label
(``LABEL=PATH``); reports with the same label are summarised together. Unlabelled reports are grouped by their
config, the data root they were trained on (when the report knows it) and the one they were tested on.

Figures (``projects/ccformer/evaluation/robustness_summary.py``): per condition mIoU and F where the ground truth is
kept (``original``, ``shuffled``), the share of empty-ground-truth frames with a mask (``frames_masked``) and the
pixel FPR; ``gap/mIoU`` and ``gap/Fscore`` (true - shuffled audio); the combined scores (FPR, G-mIoU, G-F, ...).
std is the sample standard deviation (n - 1); it is n/a for a single run.

The markdown tables are printed (and written with ``--markdown``); ``--out`` writes them as JSON.
"""

import argparse
import json
import os
import os.path as osp
import sys

from projects.ccformer.evaluation.robustness_summary import (
    format_summary,
    load_report,
    report_group,
    summarize_reports,
)
from projects.ccformer.utils.atomic import write_text


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Mean, std, min and max of robustness reports over seeds / runs')
    parser.add_argument('reports', nargs='+', help='robustness JSON reports, each PATH or LABEL=PATH')
    parser.add_argument('--out', help='write the summary as JSON here')
    parser.add_argument('--markdown', help='write the markdown tables here')
    return parser.parse_args(argv)


def split_label(arg: str):
    """``(label or None, path)`` of a ``LABEL=PATH`` / ``PATH`` argument (a path that exists is never split)."""
    if '=' in arg and not osp.exists(arg):
        label, path = arg.split('=', 1)
        if label:
            return label, path
    return None, arg


def main(argv=None) -> dict:
    args = parse_args(argv)
    runs = []
    for arg in args.reports:
        label, path = split_label(arg)
        report = load_report(path)
        runs.append((label or report_group(report), path, report))
    summary = summarize_reports(runs)
    text = format_summary(summary)
    for path, content in ((args.out, json.dumps(summary, indent=2)), (args.markdown, text + '\n')):
        if path:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            write_text(path, content)
            print(f'written: {path}', file=sys.stderr)
    print(text)
    return summary


if __name__ == '__main__':
    main()
