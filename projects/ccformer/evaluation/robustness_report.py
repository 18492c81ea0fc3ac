"""What a robustness report says around its figures: the data tested and trained on, the text and the plot.

* :func:`tested_on` / :func:`trained_on`: the data root, dataset type and split of the test config and of the
  training config stored in the checkpoint (mmengine keeps the training config's text in ``meta['cfg']``; it is
  read with :mod:`ast` as literals, never executed), so "trained on A, tested on B" is explicit.
* :func:`format_report`: the text ``tools/analysis_tools/robustness.py`` prints: what was tested, then the table,
  then the verdict, last.
* :func:`plot_report`: a PNG with the per-condition share of empty-ground-truth frames given a mask (against the
  goals) and the true vs shuffled audio mIoU and F.
"""

import ast
import os.path as osp
from typing import Any, Dict, Optional

from ..utils.atomic import atomic_path
from .robustness import CONDITION_NAMES, EMPTY_GOALS, find_metric, format_table


# ------------------------------------------------------------------------------------------------ data provenance
def _literal(node: ast.AST) -> Any:
    """The value of a config expression made of literals and ``dict(...)`` calls; None for anything else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand)
        return -value if isinstance(value, (int, float)) else None
    return None


def config_text_values(text: str) -> Dict[str, Any]:
    """Top-level ``name = value`` assignments of a config's text (``Config.pretty_text``), parsed, not executed.

    Values that are not literals or ``dict(...)`` calls of literals are None. Text that does not parse gives ``{}``.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    out = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            out[stmt.targets[0].id] = _literal(stmt.value)
    return out


def _leaf_dataset(dataset: Any) -> dict:
    """The innermost dataset of a dataset config (through wrappers' ``dataset``; the first of ``datasets``)."""
    while isinstance(dataset, dict):
        if isinstance(dataset.get('dataset'), dict):
            dataset = dataset['dataset']
        elif isinstance(dataset.get('datasets'), list) and dataset['datasets']:
            dataset = dataset['datasets'][0]
        else:
            return dataset
    return {}


def dataloader_data(cfg: Dict[str, Any], key: str) -> dict:
    """``data_root``, ``dataset_type`` and ``split`` of the dataset read by dataloader ``key`` of a config dict."""
    loader = cfg.get(key) or {}
    leaf = _leaf_dataset(loader.get('dataset') if isinstance(loader, dict) else None)
    root = leaf.get('data_root') or cfg.get('data_root')
    return dict(data_root=root, dataset_type=leaf.get('type'), split=leaf.get('split'))


def tested_on(cfg, clips: Optional[int] = None) -> dict:
    """What the test config reads (after ``--data-root``): ``data_root``, ``dataset_type``, ``split``, ``clips``."""
    cfg = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    return dict(dataloader_data(cfg, 'test_dataloader'), clips=clips)


def trained_on(checkpoint: str) -> dict:
    """What the checkpoint's model was trained on, from the training config kept in its meta.

    Returns:
        dict with ``known`` (False when the checkpoint has no config, then ``reason`` says why) and, when known,
        ``data_root``, ``dataset_type``, ``split``, ``seed`` (the run's), ``max_epochs``, ``experiment_name``.
    """
    from mmengine.runner import CheckpointLoader

    from ..utils.checkpoint import install_safe_loaders

    install_safe_loaders()  # as load_checkpoint_file, logging to the log file rather than printing
    try:
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu', logger='current')
    except Exception as err:  # a checkpoint the runner could load is read again here; report, never fail
        return dict(known=False, reason=f'could not read {checkpoint}: {err}')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return dict(known=False, reason='the checkpoint holds no training config (meta.cfg)')
    values = config_text_values(text)
    data = dataloader_data(values, 'train_dataloader')
    if not data['data_root']:
        return dict(known=False, reason='the training config in the checkpoint names no data root')
    train_cfg = values.get('train_cfg') if isinstance(values.get('train_cfg'), dict) else {}
    return dict(
        known=True,
        **data,
        seed=meta.get('seed'),
        max_epochs=train_cfg.get('max_epochs'),
        experiment_name=meta.get('experiment_name'),
    )


def same_data(a: Optional[str], b: Optional[str]) -> Optional[bool]:
    """Whether two data roots are the same folder (None when one is unknown)."""
    if not a or not b:
        return None
    return osp.normcase(osp.realpath(a)) == osp.normcase(osp.realpath(b))


# ------------------------------------------------------------------------------------------------ text
def _data_text(data: dict) -> str:
    parts = [p for p in (data.get('dataset_type'), data.get('split') and f'{data["split"]} split') if p]
    if data.get('clips') is not None:
        parts.append(f'{data["clips"]} clips')
    return f'{data.get("data_root") or "?"}' + (f' ({", ".join(parts)})' if parts else '')


def provenance_lines(report: dict) -> list:
    """``tested on`` / ``trained on`` lines of a report (which data, and whether they are the same)."""
    tested = report.get('tested_on') or dict(data_root=report.get('data_root'))
    lines = [f'tested on:  {_data_text(tested)}']
    trained = report.get('trained_on') or {}
    if trained.get('known'):
        extra = [f'{k} {trained[k]}' for k in ('seed', 'max_epochs') if trained.get(k) is not None]
        text = _data_text(trained) + (f', {", ".join(extra)}' if extra else '') + '; from the checkpoint'
        same = same_data(trained.get('data_root'), tested.get('data_root'))
        if same is True:
            text += ' -- the same data root as the test'
        elif same is False:
            text += ' -- another data root than the test: trained on one, tested on another'
        lines.append(f'trained on: {text}')
    else:
        lines.append(f'trained on: unknown ({trained.get("reason", "not recorded")})')
    return lines


def format_report(report: dict, files: Optional[Dict[str, str]] = None) -> str:
    """The text of a report: checkpoint, data, audio settings and files; then the table; the verdict last."""
    head = [f'Robustness of {report.get("checkpoint", "?")} ({report.get("config", "?")})']
    head += provenance_lines(report)
    audio = [f'seed {report.get("audio_seed", 0)}', f'noise {report.get("noise_dbfs", -20.0):g} dBFS']
    if report.get('offscreen_audio'):
        bank = report.get('sound_bank') or {}
        count = f'{bank["files"]} file{"s" if bank.get("files") != 1 else ""}' if bank else ''
        desc = f'{count}, kinds {", ".join(k or "(none)" for k in bank["kinds"])}' if bank else ''
        audio.append(f'off-screen recordings {report["offscreen_audio"]}' + (f' ({desc})' if desc else ''))
    head.append(f'audio:      {"; ".join(audio)}')
    if report.get('empty_when_silent'):
        head.append(
            'rule:       the model empties every frame whose audio is digital silence (empty_when_silent), so the '
            'silence row measures that rule; --cfg-options model.empty_when_silent=False measures the network alone'
        )
    if files:
        head.append('files:      ' + ', '.join(f'{k} {v}' for k, v in files.items() if v))
    table = format_table(report['conditions'], report.get('combined'))
    return '\n'.join(head) + '\n\n' + table + '\n\n' + report['empty_output']['text']


# ------------------------------------------------------------------------------------------------ plot
def plot_report(report: dict, path: str) -> str:
    """Write a PNG of the report to ``path``: per condition, the share of empty-ground-truth frames given a mask
    (bars) with the goal (a tick); and mIoU / F with the true vs shuffled audio. Returns ``path``."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    conditions = report['conditions']
    fp = [  # the true audio's silent / off-screen seconds, and every negative condition
        (c, find_metric(r['metrics'], 'empty_fp_rate'))
        for c, r in conditions.items()
        if c in EMPTY_GOALS and r.get('status') == 'ok' and find_metric(r['metrics'], 'num_empty_frames')
    ]
    fp = [(c, v) for c, v in fp if v is not None]
    kept = [c for c in ('original', 'shuffled') if conditions.get(c, {}).get('status') == 'ok']
    fig, (ax_fp, ax_seg) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw=dict(width_ratios=[3, 2]))
    xs = range(len(fp))
    ax_fp.bar(xs, [v for _, v in fp], color=['#4c72b0' if c == 'original' else '#dd8452' for c, _ in fp])
    for x, (c, v) in zip(xs, fp):
        ax_fp.text(x, v + 1, f'{v:.1f}', ha='center', va='bottom', fontsize=8)
        if c in EMPTY_GOALS:
            ax_fp.hlines(EMPTY_GOALS[c], x - 0.4, x + 0.4, colors='k', linestyles='--', linewidth=1)
    labels = ['original audio\n(its quiet seconds)' if c == 'original' else CONDITION_NAMES.get(c, c) for c, _ in fp]
    ax_fp.set_xticks(list(xs), labels, fontsize=8)
    ax_fp.set_ylim(0, 105)
    ax_fp.set_ylabel('% of frames given a mask')
    ax_fp.set_title('Nothing on screen sounds (empty ground truth)\n-- dashed: goal (at most)', fontsize=9)
    width = 0.38
    for i, (key, label) in enumerate((('mIoU', 'mIoU'), ('Fscore', 'F'))):
        values = [find_metric(conditions[c]['metrics'], key) or 0.0 for c in kept]
        pos = [j + (i - 0.5) * width for j in range(len(kept))]
        ax_seg.bar(pos, values, width, label=label)
        for p, v in zip(pos, values):
            ax_seg.text(p, v + 1, f'{v:.1f}', ha='center', va='bottom', fontsize=8)
    ax_seg.set_xticks(range(len(kept)), [CONDITION_NAMES[c] for c in kept], fontsize=8)
    ax_seg.set_ylim(0, 105)
    ax_seg.legend(fontsize=8)
    ax_seg.set_title('Something sounds: true vs shuffled audio', fontsize=9)
    tested = (report.get('tested_on') or {}).get('data_root') or report.get('data_root') or ''
    fig.suptitle(f'{osp.basename(str(report.get("checkpoint", "")))} on {tested}', fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return path
