"""Test a checkpoint under every audio condition in one process: one table and a JSON report.

Usage::

    python tools/analysis_tools/robustness.py CONFIG CHECKPOINT [--data-root DIR] \\
        [--conditions original shuffled silence noise offscreen] [--out report.json] [--audio-seed 0] \\
        [--noise-dbfs -20] [--work-dir DIR] [--cfg-options k=v ...] [--launcher ...]

The model is built and its checkpoint loaded once; the test set is built once and wrapped per condition in
``AudioConditionDataset`` (what ``tools/test.py --audio-condition`` does for one condition):

* ``original`` / ``shuffled`` (another clip's audio): the ground truth is kept; mIoU and F say how well, and how
  much thanks to the sound, the model segments;
* ``silence`` / ``noise`` / ``offscreen``: nothing on screen sounds, every frame's ground truth is empty;
  ``empty_fp_rate`` (frames with any mask) and ``empty_fp_pixel_rate`` (FPR, pixels) are the figures. Off-screen
  sound needs to know what each clip shows and sounds; when that is unknown (e.g. MS3 without ``clip_kinds.json``)
  the condition is reported as n/a with the reason.

Combined scores (``docs/robustness.md``): ``G_mIoU = HM(mIoU, 100 - FPR)`` and ``G_F = HM(F, 100 - FPR)``, HM the
harmonic mean, mIoU / F with the original audio and FPR the mean ``empty_fp_pixel_rate`` of the negative
conditions; ``G_mIoU_frame`` / ``G_F_frame`` use the mean ``empty_fp_rate`` instead.

The report (``--out``, default ``<work-dir>/robustness.json``) holds every metric of every condition, the combined
scores and, in words, whether the model stays empty when nothing on screen sounds.
"""

import argparse
import json
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner

from projects.ccformer.datasets.audio_conditions import AUDIO_CONDITIONS, EVAL_NOISE_DBFS
from projects.ccformer.engine import set_data_root
from projects.ccformer.engine.cpu_ddp import init_cpu_distributed
from projects.ccformer.evaluation.robustness import (
    check_conditions,
    evaluate_audio_conditions,
    format_table,
    robustness_report,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a CCFormer checkpoint under every audio condition')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--data-root', help='dataset directory (sets data_root of every dataloader\'s dataset)')
    parser.add_argument(
        '--conditions',
        nargs='+',
        default=list(AUDIO_CONDITIONS),
        choices=AUDIO_CONDITIONS,
        help='audio conditions to test (default: all)',
    )
    parser.add_argument('--audio-seed', type=int, default=0, help='seed of shuffled / noise / off-screen audio')
    parser.add_argument(
        '--noise-dbfs',
        type=float,
        default=EVAL_NOISE_DBFS,
        help='RMS level of the white noise in dB re full scale (default -20)',
    )
    parser.add_argument('--out', help='JSON report (default <work-dir>/robustness.json)')
    parser.add_argument('--work-dir', help='logs and the report (default work_dirs/<config>/robustness)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (k=v)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def setup_cfg(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line overrides."""
    for path, what in ((args.config, 'Config'), (args.checkpoint, 'Checkpoint')):
        if '://' not in path and not osp.isfile(path):
            raise FileNotFoundError(f'{what} file {path!r} does not exist; check the path')
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
    cfg.load_from = args.checkpoint
    return cfg


def main(argv=None) -> dict:
    args = parse_args(argv)
    conditions = check_conditions(args.conditions)
    cfg = setup_cfg(args)
    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    results = evaluate_audio_conditions(runner, conditions, seed=args.audio_seed, noise_dbfs=args.noise_dbfs)
    report = robustness_report(
        results,
        config=args.config,
        checkpoint=args.checkpoint,
        data_root=args.data_root,
        audio_seed=args.audio_seed,
        noise_dbfs=args.noise_dbfs,
    )
    out = args.out or osp.join(cfg.work_dir, 'robustness.json')
    if is_main_process():
        print('\n' + format_table(results, report['combined']) + '\n\n' + report['empty_output']['text'])
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(report, f, indent=2)
        print(f'report written to {out}')
    return report


if __name__ == '__main__':
    main()
