# Copyright (c) OpenMMLab. All rights reserved.
"""Test (and evaluate) a CCFormer model (mmsegmentation 1.x ``tools/test.py`` conventions).

Examples::

    python tools/test.py CONFIG CHECKPOINT                       # prints AVSBenchMetric / AVSSMetric
    python tools/test.py CONFIG CHECKPOINT --show-dir vis        # one image per clip (prediction / GT rows)
    python tools/test.py CONFIG CHECKPOINT --out preds           # keep raw predictions for offline evaluation
    python tools/test.py CONFIG CHECKPOINT --shuffle-audio 0     # every clip gets another clip's audio
    python tools/test.py CONFIG CHECKPOINT --audio-condition silence --data-root data/AVSBench/Multi-sources
    python tools/test.py CONFIG CHECKPOINT --offscreen-audio my_recordings/   # real sounds of things not on screen

``--audio-condition`` (not in mmseg) wraps the test set in ``AudioConditionDataset``: ``shuffled`` (a seeded
derangement gives each clip the audio of a different clip, which measures how much the model relies on the sound;
``--shuffle-audio SEED`` is ``--audio-condition shuffled --audio-seed SEED``), or the negative conditions
``silence``, ``noise`` (white, ``--noise-dbfs``) and ``offscreen``, under which every frame's ground truth is empty
and the metric's ``empty_fp_rate`` / ``empty_fp_pixel_rate`` are the figures to read (docs/robustness.md).
``--offscreen-audio DIR`` is ``--audio-condition offscreen_recorded`` with the recordings of DIR (one sub-folder
per kind; kinds visible in a clip are left out).
``--data-root DIR`` points every dataloader's dataset (wrapped ones included) at DIR.
"""

import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from projects.ccformer.datasets.audio_conditions import AUDIO_CONDITIONS, EVAL_NOISE_DBFS
from projects.ccformer.engine import set_data_root
from projects.ccformer.engine.cpu_ddp import init_cpu_distributed
from projects.ccformer.engine.run_checks import check_cfg_options, check_output_dir, set_test_checkpoint
from projects.ccformer.engine.safe_checkpoint import trust_checkpoint
from projects.ccformer.evaluation.robustness import audio_condition_dataset
from projects.ccformer.utils.config import check_input_files


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line (mmseg 1.2.2 ``tools/test.py`` flags plus the audio conditions and ``--data-root``)."""
    parser = argparse.ArgumentParser(description='Test (and evaluate) a CCFormer segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='if specified, the evaluation metric results will be dumped into the directory as json'
    )
    parser.add_argument(
        '--out',
        type=str,
        help='directory to save the predicted masks for offline evaluation '
        '(OUT/<video_id>/<video_id>_<k>.png: 0/255 for S4/MS3, class indices for AVSS)',
    )
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted clips (T frames side by side, '
        'prediction on top, ground truth below) will be saved',
    )
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.',
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation (needs `tta_model` and `tta_pipeline` in the config)'
    )
    parser.add_argument(
        '--shuffle-audio',
        type=int,
        default=None,
        metavar='SEED',
        help='give every test clip the audio of another clip (seeded '
        'derangement) to measure how much the model listens; same as '
        '--audio-condition shuffled --audio-seed SEED',
    )
    parser.add_argument(
        '--audio-condition',
        choices=AUDIO_CONDITIONS,
        default=None,
        help='test with the clips\' own audio (original), another clip\'s '
        '(shuffled), or negative audio (silence, noise, offscreen: every '
        'frame\'s ground truth becomes empty)',
    )
    parser.add_argument(
        '--offscreen-audio',
        metavar='DIR',
        help='hear every test frame through windows of real recordings from DIR (sounds of things not on screen, '
        'one sub-folder per kind); every frame\'s ground truth becomes empty',
    )
    parser.add_argument('--audio-seed', type=int, default=0, help='seed of the shuffled / noise / off-screen audio')
    parser.add_argument(
        '--noise-dbfs', type=float, default=EVAL_NOISE_DBFS, help='RMS level of the noise condition in dB re full scale'
    )
    parser.add_argument(
        '--data-root',
        help='dataset directory: sets data_root of every dataloader\'s dataset (wrapped datasets included)',
    )
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='load only the matching part of a checkpoint whose keys or shapes do not fit the model (by default '
        'such a checkpoint is refused, naming the keys)',
    )
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='load CHECKPOINT with full unpickling. Only for files from a trusted source: by default '
        'checkpoints are read weights-only and never execute code',
    )
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.shuffle_audio is not None:
        if args.audio_condition not in (None, 'shuffled'):
            parser.error(
                '--shuffle-audio means --audio-condition shuffled; '
                f'it cannot be combined with --audio-condition {args.audio_condition}'
            )
        args.audio_condition, args.audio_seed = 'shuffled', args.shuffle_audio
    if args.offscreen_audio or args.audio_condition == 'offscreen_recorded':
        if args.audio_condition not in (None, 'offscreen_recorded') or not args.offscreen_audio:
            parser.error('--offscreen-audio DIR means --audio-condition offscreen_recorded; give both or DIR alone')
        args.audio_condition = 'offscreen_recorded'
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg: Config, args: argparse.Namespace) -> Config:
    """Turn on drawing in ``default_hooks.visualization`` for ``--show`` / ``--show-dir``."""
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError(
            f'{args.config}: `default_hooks.visualization` is missing, so '
            '--show/--show-dir cannot draw anything; add '
            "default_hooks = dict(visualization=dict(type='AVSVisualizationHook'))"
        )
    visualization_hook = default_hooks['visualization']
    if visualization_hook.get('type') in ('SegVisualizationHook', 'mmseg.SegVisualizationHook'):
        # mmseg's hook draws one image per sample (the first frame only); clips need the clip-aware hook
        print_log(
            'tools/test.py: default_hooks.visualization is SegVisualizationHook, which draws only the '
            'first frame of a clip; using AVSVisualizationHook instead',
            logger='current',
            level=logging.WARNING,
        )
        visualization_hook['type'] = 'AVSVisualizationHook'
        visualization_hook.pop('interval', None)  # mmseg's default 50 would skip most clips
    visualization_hook['draw'] = True
    if args.show:
        visualization_hook['show'] = True
        visualization_hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def setup_cfg(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line overrides."""
    check_input_files(
        args.config, args.checkpoint, hint=' (tools/train.py writes work_dirs/<config>/epoch_*.pth and best_*.pth)'
    )
    check_output_dir(args.out, '--out')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options, args.config)
        cfg.merge_from_dict(args.cfg_options)
    set_data_root(cfg, args.data_root)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if getattr(args, 'trust_checkpoint', False):
        trust_checkpoint(args.checkpoint)
    set_test_checkpoint(cfg, args.checkpoint, args.config, getattr(args, 'allow_partial_checkpoint', False))

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        if cfg.get('tta_pipeline') is None or cfg.get('tta_model') is None:
            raise RuntimeError(f'{args.config}: --tta needs `tta_pipeline` and `tta_model` in the config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    if args.audio_condition not in (None, 'original'):
        cfg.test_dataloader.dataset = ConfigDict(
            audio_condition_dataset(
                cfg.test_dataloader.dataset,
                args.audio_condition,
                args.audio_seed,
                args.noise_dbfs,
                sound_bank=args.offscreen_audio,
            )
        )

    if args.out is not None:
        # mmseg sets test_evaluator.output_dir (IoUMetric writes PNGs); the AVS metrics keep only per-frame counts,
        # so the clip masks are written by a hook: OUT/<video_id>/<video_id>_<k>.png
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='AVSPredictionSaveHook', out_dir=args.out)]
    return cfg


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = setup_cfg(args)
    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    return runner.test()


if __name__ == '__main__':
    main()
