"""Test a checkpoint under every audio condition in one process: one table and a JSON report.

Usage::

    python tools/analysis_tools/robustness.py CONFIG CHECKPOINT [--data-root DIR] [--offscreen-audio DIR] \\
        [--conditions original shuffled silence noise offscreen offscreen_recorded] [--out report.json] \\
        [--plot report.png] [--audio-seed 0] [--noise-dbfs -20] [--work-dir DIR] [--cfg-options k=v ...] \\
        [--allow-partial-checkpoint]

The model is built and its checkpoint loaded once, strictly as ``tools/test.py`` loads it (a checkpoint whose keys
do not fit the model is refused unless ``--allow-partial-checkpoint``; the EMA hook is left out; a saved config's
``resume`` is ignored); the test set is built once and wrapped per condition in
``AudioConditionDataset`` (what ``tools/test.py --audio-condition`` does for one condition):

* ``original`` / ``shuffled`` (another clip's audio): the ground truth is kept; mIoU and F say how well, and how
  much thanks to the sound, the model segments;
* ``silence`` / ``noise`` / ``offscreen``: nothing on screen sounds, every frame's ground truth is empty;
  ``empty_fp_rate`` (frames with any mask) and ``empty_fp_pixel_rate`` (FPR, pixels) are the figures. Off-screen
  sound needs to know what each clip shows and sounds; when that is unknown (e.g. MS3 without ``clip_kinds.json``)
  the condition is reported as n/a with the reason;
* ``offscreen_recorded`` (with ``--offscreen-audio DIR``): every frame is heard through a window of a real
  recording from DIR (``SoundBank``: sub-folders are kinds; recordings of a kind visible in the clip are left out
  where both are known); every frame's ground truth is empty.

Combined scores (``docs/robustness.md``): ``G_mIoU = HM(mIoU, 100 - FPR)`` and ``G_F = HM(F, 100 - FPR)``, HM the
harmonic mean, mIoU / F with the original audio and FPR the mean ``empty_fp_pixel_rate`` of the negative
conditions; ``G_mIoU_frame`` / ``G_F_frame`` use the mean ``empty_fp_rate`` instead.

The report (``--out``, default ``<work-dir>/robustness.json``) holds every metric of every condition, the combined
scores, what the model was tested on and (from the training config kept in the checkpoint) trained on, and, in
words, whether the model stays empty when nothing on screen sounds. ``--plot`` (default: the report's name with
``.png``) draws the per-condition share of frames given a mask and the true vs shuffled audio figures.

Output: the runner's log (config, per-condition progress and figures) goes to the log file in the work dir; the
console gets warnings, one line per condition as it starts, then what was tested, the table and the verdict, last.
Summarise several reports (seeds) with ``tools/analysis_tools/robustness_summary.py``.
"""

import argparse
import json
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner

from projects.ccformer.datasets import SoundBank
from projects.ccformer.datasets.audio_conditions import AUDIO_CONDITIONS, EVAL_NOISE_DBFS, RECORDED_CONDITION
from projects.ccformer.datasets.sound_bank import resolve_bank_root
from projects.ccformer.engine import set_data_root
from projects.ccformer.engine.cpu_ddp import init_cpu_distributed
from projects.ccformer.engine.run_checks import set_test_checkpoint
from projects.ccformer.evaluation.robustness import check_conditions, evaluate_audio_conditions, robustness_report
from projects.ccformer.evaluation.robustness_report import format_report, plot_report, tested_on, trained_on
from projects.ccformer.utils.atomic import write_text
from projects.ccformer.utils.config import check_input_files


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a CCFormer checkpoint under every audio condition')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--data-root', help='dataset directory (sets data_root of every dataloader\'s dataset)')
    parser.add_argument(
        '--conditions',
        nargs='+',
        choices=AUDIO_CONDITIONS,
        help=f'audio conditions to test (default: all; {RECORDED_CONDITION} with --offscreen-audio only)',
    )
    parser.add_argument(
        '--offscreen-audio',
        metavar='DIR',
        help='folder of real recordings of things not on screen (one sub-folder per kind): adds the condition '
        f'{RECORDED_CONDITION}, every frame heard through them with an empty ground truth',
    )
    parser.add_argument('--audio-seed', type=int, default=0, help='seed of shuffled / noise / off-screen audio')
    parser.add_argument(
        '--noise-dbfs',
        type=float,
        default=EVAL_NOISE_DBFS,
        help='RMS level of the white noise in dB re full scale (default -20)',
    )
    parser.add_argument('--out', help='JSON report (default <work-dir>/robustness.json)')
    parser.add_argument('--plot', help='PNG plot of the report (default: the report path with .png)')
    parser.add_argument('--work-dir', help='logs and the report (default work_dirs/<config>/robustness)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (k=v)')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='load only the matching part of a checkpoint whose keys do not fit the model (by default such a '
        'checkpoint is refused, as by tools/test.py)',
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.conditions is None:
        args.conditions = [c for c in AUDIO_CONDITIONS if c != RECORDED_CONDITION or args.offscreen_audio]
    elif RECORDED_CONDITION in args.conditions and not args.offscreen_audio:
        parser.error(f'--conditions {RECORDED_CONDITION} needs --offscreen-audio DIR (the recordings)')
    if args.offscreen_audio:
        args.offscreen_audio = resolve_bank_root(args.offscreen_audio)  # 'assets:recorded/bank_heldout': shipped
    if args.offscreen_audio and not os.path.isdir(args.offscreen_audio):
        parser.error(f'--offscreen-audio {args.offscreen_audio}: not a folder')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def setup_cfg(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line overrides."""
    check_input_files(args.config, args.checkpoint)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    set_data_root(cfg, args.data_root)
    cfg.work_dir = (
        args.work_dir
        or cfg.get('work_dir')
        or osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0], 'robustness')
    )
    set_test_checkpoint(cfg, args.checkpoint, args.config, args.allow_partial_checkpoint)
    return cfg


def build_quiet_runner(cfg: Config) -> Runner:
    """The runner, its console showing warnings only: the config dump and the test loops' progress and metrics go
    to its log file (at the config's ``log_level``, default INFO)."""
    level = cfg.get('log_level', 'INFO')
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    for handler in runner.logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.setLevel(level)
    runner.logger.info(f'Config:\n{cfg.pretty_text}')
    return runner


def main(argv=None) -> dict:
    args = parse_args(argv)
    conditions = check_conditions(args.conditions)
    bank = SoundBank(args.offscreen_audio) if args.offscreen_audio else None
    cfg = setup_cfg(args)
    init_cpu_distributed(cfg)
    runner = build_quiet_runner(cfg)
    progress = print if is_main_process() else None
    results = evaluate_audio_conditions(
        runner, conditions, seed=args.audio_seed, noise_dbfs=args.noise_dbfs, sound_bank=bank, progress=progress
    )
    clips = next((r['clips'] for c, r in results.items() if c in ('original', 'shuffled') and 'clips' in r), None)
    report = robustness_report(
        results,
        config=args.config,
        checkpoint=args.checkpoint,
        data_root=args.data_root,
        audio_seed=args.audio_seed,
        noise_dbfs=args.noise_dbfs,
        offscreen_audio=args.offscreen_audio,
        sound_bank=dict(files=len(bank), kinds=list(bank.kinds)) if bank else None,
        tested_on=tested_on(cfg, clips),
        trained_on=trained_on(args.checkpoint),
        empty_when_silent=bool(cfg.model.get('empty_when_silent', False)),
    )
    out = args.out or osp.join(cfg.work_dir, 'robustness.json')
    plot = args.plot or osp.splitext(out)[0] + '.png'
    if is_main_process():
        for path in (out, plot):
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        write_text(out, json.dumps(report, indent=2))
        plot_report(report, plot)
        files = dict(report=out, plot=plot, log=runner.logger.log_file)
        print('\n' + format_report(report, files))
    return report


if __name__ == '__main__':
    main()
