"""Run a robustness study over seeds: generate data, train, test under every audio condition, summarise.

Usage::

    python tools/analysis_tools/robustness_study.py study.json [--dry-run]

The study file (JSON; nothing in it is executed except the commands it names) says what to run::

    {
      "work_dir": "work_dirs/study_ms3",
      "config": "configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-ms3-64x64.py",
      "seeds": [0, 1, 2],
      "epochs": 24,
      "train_on": "toy",
      "test_on": ["toy", "other"],
      "families": {
        "toy": {
          "data_root": "{work_dir}/data/toy/seed{seed}",
          "generate": ["python", "tools/dataset_converters/generate_toy_avsbench.py", "{data_root}",
                       "--layout", "ms3", "--seed", "{seed}", "--img-size", "64"]
        },
        "other": {"data_root": "data/other_ms3"}
      },
      "offscreen_audio": "data/offscreen_recordings",
      "calibrate": {"offscreen_audio": "assets:recorded/bank"},
      "train_args": ["--cfg-options", "train_dataloader.num_workers=0"],
      "robustness_args": []
    }

For each seed S (and each family F among ``train_on`` and ``test_on``):

1. **generate**: F's ``generate`` command, if it has one, writes F's ``data_root``. A family without ``generate``
   is data that exists already (e.g. AVSBench); a ``data_root`` without ``{seed}`` is generated once for all seeds.
2. **train** on ``train_on``'s data: ``python tools/train.py CONFIG --work-dir WORK/train/S --data-root DATA
   --cfg-options randomness.seed=S train_cfg.max_epochs=EPOCHS`` + ``train_args``.
2b. **calibrate** (with ``calibrate``, optional): ``tools/analysis_tools/calibrate_presence.py`` shifts the presence
   decision of the trained checkpoint to its best balanced accuracy on the *training* family's validation split
   (``--offscreen-audio`` the calibration's own folder, e.g. the training bank; never the test recordings), writing
   ``WORK/train/S/calibrated.pth``; both checkpoints are then tested, the calibrated one as ``<test>_calibrated``.
   ``calibrate.command`` replaces the command (placeholders ``{work_dir}``, ``{config}``, ``{epochs}``, ``{seed}``,
   ``{checkpoint}``, ``{out}``, ``{data_root}``, ``{audio_seed}``, ``{train_work_dir}``, ``{train_config}``). A
   recordings folder may be given as ``assets:<path>`` (a folder shipped with the package, e.g.
   ``assets:recorded/bank_heldout``).
3. **test** on each ``test_on`` family: ``python tools/analysis_tools/robustness.py TRAINED_CONFIG CHECKPOINT
   --data-root DATA --audio-seed S --out WORK/reports/<train>_on_<test>/seed<S>.json`` (+ ``--offscreen-audio``
   when given) + ``robustness_args``. TRAINED_CONFIG (``{train_config}``) is the config that training saved in
   ``WORK/train/S/``, with the ``--cfg-options`` of ``train_args`` in it, so a model changed by them is tested as it
   was trained (the study's config would build a model without the change and leave its trained weights unused).
   Calibration (2b) reads it too.
4. **summarise** every report, grouped by ``<train> -> <test>``: ``WORK/summary.md`` and ``WORK/summary.json``
   (``tools/analysis_tools/robustness_summary.py``), printed last.

Commands are lists (no shell); ``{seed}``, ``{data_root}``, ``{work_dir}``, ``{family}``, ``{epochs}`` and
``{config}`` are filled in, and a leading ``python`` is this interpreter. ``train_command`` / ``test_command`` in
the study file replace the default commands of steps 2 and 3 (same placeholders, plus ``{train_work_dir}`` and,
for tests, ``{train_config}``, ``{checkpoint}``, ``{out}``, ``{audio_seed}``, ``{test_work_dir}``).

Resumable: a step that finished is recorded under ``WORK/done/`` and skipped when the study is run again; a
training run that stopped part-way is resumed (``--resume``). Each step's output goes to ``WORK/logs/``; a failed
step stops the study with the command and the log's tail. ``--dry-run`` prints the commands without running them.
"""

import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

from projects.ccformer.datasets.sound_bank import resolve_bank_root
from projects.ccformer.evaluation.robustness_summary import format_summary, load_report, read_json, summarize_reports
from projects.ccformer.utils.atomic import write_text
from projects.ccformer.utils.config import saved_config_path

DEFAULT_TRAIN = [
    'python',
    'tools/train.py',
    '{config}',
    '--work-dir',
    '{train_work_dir}',
    '--data-root',
    '{data_root}',
    '--cfg-options',
    'randomness.seed={seed}',
    'train_cfg.max_epochs={epochs}',
]
DEFAULT_TEST = [
    'python',
    'tools/analysis_tools/robustness.py',
    '{train_config}',
    '{checkpoint}',
    '--data-root',
    '{data_root}',
    '--audio-seed',
    '{audio_seed}',
    '--work-dir',
    '{test_work_dir}',
    '--out',
    '{out}',
]
DEFAULT_CALIBRATE = [
    'python',
    'tools/analysis_tools/calibrate_presence.py',
    '{train_config}',
    '{checkpoint}',
    '--out',
    '{out}',
    '--data-root',
    '{data_root}',
    '--audio-seed',
    '{audio_seed}',
    '--force',
]
REQUIRED = ('work_dir', 'config', 'seeds', 'epochs', 'train_on', 'test_on', 'families')


class StudyError(RuntimeError):
    """A study file that cannot be run, or a step that failed."""


def load_study(path: str) -> dict:
    """Read and check the study file; errors name the file and the key."""
    try:
        study = read_json(path, 'study file', f'see the usage in {__file__}')
    except (FileNotFoundError, ValueError) as err:
        raise StudyError(str(err)) from err
    if not isinstance(study, dict):
        raise StudyError(f'{path}: expected a JSON object; see the usage in {__file__}')
    missing = [k for k in REQUIRED if k not in study]
    if missing:
        raise StudyError(f'{path}: missing key(s) {missing}; see the usage in {__file__}')
    if isinstance(study['test_on'], str):
        study['test_on'] = [study['test_on']]
    families = study['families']
    for name in [study['train_on']] + list(study['test_on']):
        if name not in families:
            raise StudyError(f'{path}: family {name!r} is used but not defined in "families" ({sorted(families)})')
        if 'data_root' not in families[name]:
            raise StudyError(f'{path}: family {name!r} has no "data_root"')
    if not study['seeds'] or not all(isinstance(s, int) for s in study['seeds']):
        raise StudyError(f'{path}: "seeds" must be a non-empty list of integers, got {study["seeds"]!r}')
    for key in ('train_args', 'robustness_args', 'train_command', 'test_command'):
        if key in study and not (isinstance(study[key], list) and all(isinstance(a, str) for a in study[key])):
            raise StudyError(f'{path}: "{key}" must be a list of strings (one per argument)')
    calibrate = study.get('calibrate')
    if calibrate is not None and not (
        isinstance(calibrate, dict)
        and set(calibrate) <= {'offscreen_audio', 'args', 'command'}
        and isinstance(calibrate.get('offscreen_audio', ''), str)
        and all(
            isinstance(calibrate.get(k, []), list) and all(isinstance(a, str) for a in calibrate.get(k, []))
            for k in ('args', 'command')
        )
        and calibrate.get('command', [None]) != []
    ):
        raise StudyError(
            f'{path}: "calibrate" must be an object with "offscreen_audio" (a folder), "args" and/or "command" '
            f'(lists of strings), e.g. {{"offscreen_audio": "assets:recorded/bank"}}'
        )
    for name, fam in families.items():
        gen = fam.get('generate')
        if gen is not None and not (isinstance(gen, list) and gen and all(isinstance(a, str) for a in gen)):
            raise StudyError(f'{path}: families.{name}.generate must be a list of strings (one per argument)')
    return study


def fill(template: Sequence[str], **fields) -> List[str]:
    """The command with ``{name}`` placeholders filled in; a leading ``python`` becomes this interpreter."""
    try:
        cmd = [str(arg).format(**fields) for arg in template]
    except (KeyError, IndexError) as err:
        raise StudyError(f'command {list(template)}: unknown placeholder {err}; use {sorted(fields)}') from err
    if cmd and cmd[0] == 'python':
        cmd[0] = sys.executable
    return cmd


def _slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', text).strip('_')


class Study:
    """One study file's steps (module docstring)."""

    def __init__(self, study: dict, dry_run: bool = False) -> None:
        self.s = study
        self.work_dir = study['work_dir']
        self.dry_run = dry_run
        self.base = dict(work_dir=self.work_dir, config=study['config'], epochs=study['epochs'])

    def data_root(self, family: str, seed: int) -> str:
        return self.s['families'][family]['data_root'].format(seed=seed, family=family, **self.base)

    def _done(self, step: str) -> str:
        return osp.join(self.work_dir, 'done', _slug(step))

    def run(self, step: str, cmd: List[str]) -> bool:
        """Run ``cmd`` unless ``step`` is done; True when it ran (or would run, dry run)."""
        marker = self._done(step)
        if osp.exists(marker):
            print(f'[study] {step}: done before, skipped')
            return False
        print(f'[study] {step}: {" ".join(cmd)}')
        if self.dry_run:
            return True
        log = osp.join(self.work_dir, 'logs', _slug(step) + '.log')
        os.makedirs(osp.dirname(log), exist_ok=True)
        with open(log, 'w') as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            with open(log) as f:
                tail = f.read()[-3000:]
            raise StudyError(f'{step} failed (exit {proc.returncode}): {" ".join(cmd)}\nlog {log}, last lines:\n{tail}')
        os.makedirs(osp.dirname(marker), exist_ok=True)
        write_text(marker, ' '.join(cmd) + '\n')
        return True

    def generate(self, family: str, seed: int) -> str:
        root = self.data_root(family, seed)
        gen = self.s['families'][family].get('generate')
        if gen:
            fields = dict(self.base, seed=seed, family=family, data_root=root)
            self.run(f'generate {family} {root}', fill(gen, **fields))
        elif not osp.isdir(root) and not self.dry_run:
            raise StudyError(f'family {family!r}: data root {root!r} does not exist and the family has no "generate"')
        return root

    def train(self, seed: int, data_root: str) -> str:
        """Train (or resume) for ``seed``; the checkpoint path."""
        work = osp.join(self.work_dir, 'train', f'seed{seed}')
        fields = dict(self.base, seed=seed, family=self.s['train_on'], data_root=data_root, train_work_dir=work)
        cmd = fill(self.s.get('train_command', DEFAULT_TRAIN), **fields) + list(self.s.get('train_args', []))
        step = f'train seed{seed}'
        if not osp.exists(self._done(step)) and osp.isfile(osp.join(work, 'last_checkpoint')) and '--resume' not in cmd:
            cmd.append('--resume')  # an earlier run stopped part-way
        self.run(step, cmd)
        return self.checkpoint(work)

    def checkpoint(self, work: str) -> str:
        path = osp.join(work, 'last_checkpoint')
        if self.dry_run and not osp.isfile(path):
            return osp.join(work, f'epoch_{self.s["epochs"]}.pth')
        if not osp.isfile(path):
            raise StudyError(f'training finished but wrote no {path}; look at its log under {self.work_dir}/logs')
        with open(path) as f:
            return f.read().strip()

    def trained(self, seed: int, command: Sequence[str]) -> dict:
        """``train_work_dir`` and ``train_config`` of ``seed`` for ``command``: the config as training saved it in its
        work dir (with the ``--cfg-options`` of ``train_args`` merged), so the model tested is the model trained.
        A command that uses ``{train_config}`` when training saved none is an error (with ``--dry-run``, before
        training, the study's config stands in)."""
        work = osp.join(self.work_dir, 'train', f'seed{seed}')
        saved = saved_config_path(work, self.s['config'])
        if not osp.isfile(saved) and any('{train_config}' in str(part) for part in command):
            if not self.dry_run:
                raise StudyError(
                    f'training of seed {seed} saved no config at {saved}, so the model it trained cannot be rebuilt '
                    'for testing; a train_command must write its work dir to {train_work_dir} (tools/train.py '
                    '--work-dir {train_work_dir}), or give a test_command / calibrate.command with the config to use'
                )
            saved = self.s['config']
        return dict(train_work_dir=work, train_config=saved)

    def calibrate(self, seed: int, checkpoint: str, data_root: str) -> str:
        """The checkpoint with its presence decision calibrated on the training family's validation split."""
        calibrate = self.s['calibrate']
        out = osp.join(self.work_dir, 'train', f'seed{seed}', 'calibrated.pth')
        fields = dict(self.base, seed=seed, checkpoint=checkpoint, out=out, data_root=data_root, audio_seed=seed)
        template = calibrate.get('command', DEFAULT_CALIBRATE)
        fields.update(self.trained(seed, template))
        cmd = fill(template, **fields)
        if calibrate.get('offscreen_audio') and 'command' not in calibrate:
            cmd += ['--offscreen-audio', calibrate['offscreen_audio']]
        self.run(f'calibrate seed{seed}', cmd + list(calibrate.get('args', [])))
        return out

    def report_path(self, train: str, test: str, seed: int) -> str:
        return osp.join(self.work_dir, 'reports', f'{_slug(train)}_on_{_slug(test)}', f'seed{seed}.json')

    def test(self, seed: int, checkpoint: str, family: str, data_root: str, suffix: str = '') -> str:
        out = self.report_path(self.s['train_on'], family + suffix, seed)
        fields = dict(
            self.base,
            seed=seed,
            family=family,
            data_root=data_root,
            checkpoint=checkpoint,
            out=out,
            audio_seed=seed,
            test_work_dir=osp.join(self.work_dir, 'test', f'seed{seed}', _slug(family + suffix)),
        )
        template = self.s.get('test_command', DEFAULT_TEST)
        fields.update(self.trained(seed, template))
        cmd = fill(template, **fields)
        if self.s.get('offscreen_audio') and 'test_command' not in self.s:
            cmd += ['--offscreen-audio', self.s['offscreen_audio']]
        cmd += list(self.s.get('robustness_args', []))
        if not self.dry_run:
            os.makedirs(osp.dirname(out), exist_ok=True)
        self.run(f'test seed{seed} {family}{suffix}', cmd)
        return out

    def summarize(self, reports: Dict[str, List[str]]) -> Optional[dict]:
        runs = [(label, path, load_report(path)) for label, paths in reports.items() for path in paths]
        if not runs:
            return None
        summary = summarize_reports(runs)
        text = format_summary(summary)
        write_text(osp.join(self.work_dir, 'summary.json'), json.dumps(summary, indent=2))
        write_text(osp.join(self.work_dir, 'summary.md'), text + '\n')
        print(f'[study] summary: {osp.join(self.work_dir, "summary.md")}, {osp.join(self.work_dir, "summary.json")}')
        print('\n' + text)
        return summary

    def __call__(self) -> Optional[dict]:
        banks = [('offscreen_audio', self.s.get('offscreen_audio'))]
        banks.append(('calibrate.offscreen_audio', (self.s.get('calibrate') or {}).get('offscreen_audio')))
        for key, bank in banks:
            if bank and not osp.isdir(resolve_bank_root(bank)) and not self.dry_run:
                raise StudyError(f'{key} {bank!r} is not a folder (the recordings of things not on screen)')
        os.makedirs(self.work_dir, exist_ok=True)
        train_on = self.s['train_on']
        reports: Dict[str, List[str]] = {}
        for seed in self.s['seeds']:
            roots = {f: self.generate(f, seed) for f in dict.fromkeys([train_on] + list(self.s['test_on']))}
            checkpoint = self.train(seed, roots[train_on])
            calibrated = self.calibrate(seed, checkpoint, roots[train_on]) if 'calibrate' in self.s else None
            for family in self.s['test_on']:
                out = self.test(seed, checkpoint, family, roots[family])
                reports.setdefault(f'{train_on} -> {family}', []).append(out)
                if calibrated is not None:
                    out = self.test(seed, calibrated, family, roots[family], suffix='_calibrated')
                    reports.setdefault(f'{train_on} -> {family} (calibrated)', []).append(out)
        return None if self.dry_run else self.summarize(reports)


def main(argv=None) -> Optional[dict]:
    parser = argparse.ArgumentParser(description='Generate, train, test under every audio condition, summarise')
    parser.add_argument('study', help='study file (JSON), see the module docstring')
    parser.add_argument('--dry-run', action='store_true', help='print the commands without running them')
    args = parser.parse_args(argv)
    try:
        return Study(load_study(args.study), dry_run=args.dry_run)()
    except StudyError as err:
        raise SystemExit(f'robustness_study: {err}') from None


if __name__ == '__main__':
    main()
