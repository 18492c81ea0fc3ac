"""The main job (``make demo``): toy data -> train on CPU -> test -> overlays -> video demo -> summary.

    python tools/run_main_job.py [--work-dir work_dirs/demo] [--epochs 60] [--seed 0]

Every step runs the user-facing command in a subprocess (exactly what a user types):

1. a seeded toy AVSBench-S4 dataset (official layout) is written under ``<work-dir>/data``;
2. ``tools/train.py`` trains the tiny CCFormer config on CPU (iterations via ``--cfg-options``), validating with
   ``AVSBenchMetric`` and keeping the best checkpoint by val mIoU;
3. ``tools/test.py`` evaluates the best checkpoint on the toy test split with ``--show-dir`` (one overlay image per
   clip), then again with ``--shuffle-audio 0`` (every clip hears another clip's sound);
4. ``tools/analysis_tools/robustness.py`` tests it under every audio condition (original, shuffled, silence, noise,
   off-screen sound) and writes ``<work-dir>/robustness.json``;
5. a small mp4 (H.264 + AAC, written with PyAV) is made from toy test clips and ``demo/video_demo.py`` segments it;
6. a summary is printed and written to ``<work-dir>/summary.json`` / ``summary.md``: the gap between the true-audio
   and the shuffled-audio mIoU shows that the model uses the sound; the silent-frame false-positive rate (true
   audio, frames whose ground truth is empty) and the negative-audio table show whether it stays empty when nothing
   on screen sounds.
"""

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from projects.ccformer.datasets.toy_video import make_toy_video, toy_test_clips
from projects.ccformer.evaluation.robustness import format_table
from projects.ccformer.utils.atomic import write_text
from projects.ccformer.utils.config import saved_config_path

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

DEFAULT_CONFIG = 'configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py'
METRIC_KEYS = (
    'mIoU',
    'Fscore',
    'maxFscore',
    'legacy_mIoU',
    'legacy_Fscore',
    'empty_fp_rate',
    'empty_fp_pixel_rate',
    'num_empty_frames',
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='CCFormer main job: toy data, CPU training, test, demo')
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='tiny model config')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='everything is written here')
    parser.add_argument(
        '--epochs',
        type=int,
        default=60,
        help='training epochs (epoch-based configs such as the tiny one; the robust S4 recipe needs 60)',
    )
    parser.add_argument('--iters', type=int, default=300, help='training iterations (iteration-based configs)')
    parser.add_argument(
        '--val-interval',
        type=int,
        default=None,
        help='validate/checkpoint every N epochs (or iterations); default a quarter of the run',
    )
    parser.add_argument('--seed', type=int, default=0, help='seed of the toy data and of training')
    parser.add_argument(
        '--num-videos',
        type=int,
        nargs=3,
        default=[48, 8, 8],
        metavar=('TRAIN', 'VAL', 'TEST'),
        help='toy clips per split',
    )
    parser.add_argument('--img-size', type=int, default=64, help='toy frame size')
    parser.add_argument('--skip-train', action='store_true', help='reuse the checkpoint of a previous run')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='extra --cfg-options for train and test')
    return parser.parse_args(argv)


def run(cmd: List[str], log_path: str, title: str) -> float:
    """Run a command (repo root as cwd), tee its output to ``log_path``; raise with the log tail on failure."""
    print(f'\n=== {title}\n$ {" ".join(cmd)}', flush=True)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    start = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        for line in proc.stdout:
            log.write(line)
            if _interesting(line):
                print('  ' + line.rstrip()[:200], flush=True)
        proc.wait()
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-40:])
        raise RuntimeError(f'{title} failed (exit {proc.returncode}); log: {log_path}\n{tail}')
    return time.time() - start


def _interesting(line: str) -> bool:
    """Progress lines worth echoing: training/validation/test logs, the demo's report, errors."""
    keys = (
        'Epoch(train)',
        'Iter(train)',
        'Epoch(val) [',
        'Epoch(test) [',
        'Iter(val) [',
        'Iter(test) [',
        'resumed',
        'Traceback',
        'frames in',
        'overlay video',
        'masks:',
        'wrote ',
    )
    return any(k in line for k in keys) and ('mIoU' in line or 'loss' in line or 'Epoch' not in line)


def generate_data(root: str, num_videos: List[int], seed: int, img_size: int, log_path: str) -> None:
    """Seeded toy S4 dataset through the user CLI ``tools/dataset_converters/generate_toy_avsbench.py``."""
    if osp.isfile(osp.join(root, 's4_meta_data.csv')):
        print(f'toy dataset already at {root} (delete it to regenerate)')
        return
    run(
        [
            sys.executable,
            'tools/dataset_converters/generate_toy_avsbench.py',
            root,
            '--layout',
            's4',
            '--num-videos',
            *map(str, num_videos),
            '--seed',
            str(seed),
            '--img-size',
            str(img_size),
        ],
        log_path,
        f'toy AVSBench-S4 data (seed {seed})',
    )


def video_demo_config(config: str, train_dir: str, cfg_options) -> str:
    """The config the video demo builds its model from: ``demo/video_demo.py`` takes no ``--cfg-options``, so with
    them it reads the config as training saved it in ``train_dir`` (the options merged in), else ``config``."""
    trained = saved_config_path(train_dir, config)
    return trained if cfg_options and osp.isfile(trained) else config


def video_demo_paths(work: str):
    """``(input video, --out folder)`` of the video demo step: the input lies outside the output folder, which the
    video demo creates (it refuses a folder that holds files)."""
    return osp.join(work, 'video_input', 'toy_demo.mp4'), osp.join(work, 'video_demo')


def schedule_options(config: str, args: argparse.Namespace):
    """``--cfg-options`` for the run length of an epoch- or iteration-based config; returns (options, label)."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    by_epoch = 'Epoch' in cfg.train_cfg.get('type', 'EpochBasedTrainLoop') or 'max_epochs' in cfg.train_cfg
    total = args.epochs if by_epoch else args.iters
    interval = args.val_interval or max(1, total // 4)
    key = 'max_epochs' if by_epoch else 'max_iters'
    opts = [
        f'train_cfg.{key}={total}',
        f'train_cfg.val_interval={interval}',
        f'default_hooks.checkpoint.interval={interval}',
        'default_hooks.logger.interval=10',
    ]
    return opts, f'{total} {"epochs" if by_epoch else "iterations"}'


def latest_metrics(work_dir: str) -> Dict[str, float]:
    """Metrics of the last test run in ``work_dir`` (mmengine's ``<timestamp>/<timestamp>.json``)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    if not files:
        raise FileNotFoundError(f'no metrics json under {work_dir}')
    with open(files[-1]) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    merged: Dict[str, float] = {}
    for entry in lines:
        merged.update(entry)
    return merged


def best_checkpoint(work_dir: str) -> str:
    best = sorted(glob.glob(osp.join(work_dir, 'best_*.pth')), key=osp.getmtime)
    if best:
        return best[-1]
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            return f.read().strip()
    raise FileNotFoundError(f'no checkpoint in {work_dir}')


def demo_iou(data_root: str, ids: List[str], mask_dir: str, stem: str) -> Optional[float]:
    """Mean per-frame IoU (official per-frame rule, ``evaluation.functional.frame_iou``: empty GT scores the
    background accuracy) of the demo masks against the toy test masks, in percent."""
    import cv2

    from projects.ccformer.evaluation.functional import frame_iou

    clips = {clip['video_id']: clip for clip in toy_test_clips(data_root)}
    ious = []
    for name in ids:
        if name not in clips:
            return None
        for mask_path in clips[name]['mask_paths']:
            gt = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE) > 127
            pred_path = osp.join(mask_dir, f'{stem}_{len(ious) + 1}.png')
            if not osp.isfile(pred_path):
                return None
            pred = cv2.imread(pred_path, cv2.IMREAD_GRAYSCALE) > 127
            if pred.shape != gt.shape:
                pred = cv2.resize(pred.astype(np.uint8), gt.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
            logits = np.where(pred, 1.0, -1.0).astype(np.float32)[None]  # the hard mask as logits (sigmoid > 0.5)
            ious.append(frame_iou(logits, gt[None].astype(np.uint8))[0])
    return 100 * float(np.mean(ious))


def main(argv=None) -> Dict:
    args = parse_args(argv)
    t0 = time.time()
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    config = osp.join(REPO_ROOT, args.config) if not osp.isabs(args.config) else args.config
    if not osp.isfile(config):
        raise FileNotFoundError(f'config {config} not found')
    data_root = osp.join(work, 'data', 'Single-source')
    py = sys.executable
    timings = {}

    start = time.time()
    generate_data(data_root, args.num_videos, args.seed, args.img_size, osp.join(work, 'data.log'))
    timings['data'] = time.time() - start

    train_dir = osp.join(work, 'train')
    common = ['--data-root', data_root]
    extra = ['--cfg-options'] + list(args.cfg_options) if args.cfg_options else []
    schedule, length = schedule_options(config, args)
    if not args.skip_train:
        from projects.ccformer.engine.run_checks import earlier_run_files

        if earlier_run_files(train_dir):  # tools/train.py would refuse too; say what to do for the main job
            raise FileExistsError(
                f'{train_dir} holds the checkpoints of an earlier run: pass --skip-train to test '
                f'and demo that model again, --work-dir NEW_DIR for a new run, or delete {train_dir}'
            )
        train_opts = schedule + [f'randomness.seed={args.seed}'] + list(args.cfg_options)
        timings['train'] = run(
            [py, 'tools/train.py', config, '--work-dir', train_dir] + common + ['--cfg-options'] + train_opts,
            osp.join(work, 'train.log'),
            'train (tools/train.py, CPU)',
        )
    ckpt = best_checkpoint(train_dir)

    test_dir = osp.join(work, 'test')
    vis_dir = osp.join(work, 'vis')
    timings['test'] = run(
        [py, 'tools/test.py', config, ckpt, '--work-dir', test_dir, '--show-dir', vis_dir] + common + extra,
        osp.join(work, 'test.log'),
        'test, true audio (tools/test.py)',
    )
    true_metrics = latest_metrics(test_dir)

    shuf_dir = osp.join(work, 'test_shuffled_audio')
    timings['test_shuffled'] = run(
        [py, 'tools/test.py', config, ckpt, '--work-dir', shuf_dir, '--shuffle-audio', '0'] + common + extra,
        osp.join(work, 'test_shuffled.log'),
        'test, shuffled audio (tools/test.py --shuffle-audio 0)',
    )
    shuf_metrics = latest_metrics(shuf_dir)

    robustness_json = osp.join(work, 'robustness.json')
    timings['test_negative_audio'] = run(
        [
            py,
            'tools/analysis_tools/robustness.py',
            config,
            ckpt,
            '--work-dir',
            osp.join(work, 'test_robustness'),
            '--out',
            robustness_json,
        ]
        + common
        + extra,
        osp.join(work, 'test_robustness.log'),
        'test under every audio condition (tools/analysis_tools/robustness.py)',
    )
    with open(robustness_json) as f:
        robustness = json.load(f)

    video, demo_dir = video_demo_paths(work)
    os.makedirs(osp.dirname(video), exist_ok=True)
    demo_config = video_demo_config(config, train_dir, args.cfg_options)
    ids = make_toy_video(data_root, video)
    timings['video_demo'] = run(
        [
            py,
            'demo/video_demo.py',
            video,
            demo_config,
            ckpt,
            '--out',
            demo_dir,
            '--device',
            'cpu',
            '--img-size',
            str(args.img_size),
            str(args.img_size),
        ],
        osp.join(work, 'video_demo.log'),
        'video demo (demo/video_demo.py)',
    )
    video_iou = demo_iou(data_root, ids, osp.join(demo_dir, 'masks'), 'toy_demo')

    vis_images = sorted(glob.glob(osp.join(vis_dir, '**', '*.png'), recursive=True))
    ckpt_shown = osp.relpath(ckpt, REPO_ROOT) if ckpt.startswith(REPO_ROOT) else ckpt
    summary = dict(
        config=osp.relpath(config, REPO_ROOT),
        schedule=length,
        checkpoint=ckpt_shown,
        seed=args.seed,
        num_videos=args.num_videos,
        test_true_audio={k: true_metrics[k] for k in METRIC_KEYS if k in true_metrics},
        test_shuffled_audio={k: shuf_metrics[k] for k in METRIC_KEYS if k in shuf_metrics},
        mIoU_gap=true_metrics.get('mIoU', float('nan')) - shuf_metrics.get('mIoU', float('nan')),
        **negative_audio_summary(true_metrics, robustness, robustness_json),
        video_demo=dict(
            video=video,
            masks=osp.join(demo_dir, 'masks'),
            overlay=osp.join(demo_dir, 'toy_demo_overlay.mp4'),
            mIoU_vs_gt=video_iou,
        ),
        overlay_images=len(vis_images),
        overlay_dir=vis_dir,
        timings_s={k: round(v, 1) for k, v in timings.items()},
        total_s=round(time.time() - t0, 1),
    )
    cli = list(argv if argv is not None else sys.argv[1:])
    summary['command'] = ' '.join(['python tools/run_main_job.py'] + cli)
    write_text(osp.join(work, 'summary.json'), json.dumps(summary, indent=2))
    write_text(osp.join(work, 'summary.md'), summary_markdown(summary))
    print_summary(summary)
    return summary


def negative_audio_summary(true_metrics: Dict[str, float], robustness: Dict, report_path: str) -> Dict:
    """The summary's negative-audio fields.

    * ``silent_frames``: the frames of the true-audio test whose ground truth is empty (silent or off-screen
      seconds): how many, and the percent with a mask (``empty_fp_rate``) or empty;
    * ``negative_audio``: the per-condition report of ``tools/analysis_tools/robustness.py`` and its combined scores;
    * ``stays_empty`` / ``stays_empty_text``: its verdict, in words, on whether the model stays empty when nothing
      on screen sounds.
    """
    rate, num = true_metrics.get('empty_fp_rate'), true_metrics.get('num_empty_frames')
    silent = dict(
        num_frames=None if num is None else int(num),
        masked_percent=rate,
        empty_percent=None if rate is None else 100 - rate,
        pixel_percent=true_metrics.get('empty_fp_pixel_rate'),
    )
    return dict(
        silent_frames=silent,
        negative_audio=dict(conditions=robustness['conditions'], combined=robustness['combined'], report=report_path),
        stays_empty=robustness['empty_output']['stays_empty'],
        stays_empty_text=robustness['empty_output']['text'],
    )


def _silent_line(s: Dict) -> str:
    f = s['silent_frames']
    if not f['num_frames']:
        return 'Silent / off-screen frames (empty ground truth, true audio): none in the test split.'
    return (
        f'Silent / off-screen frames (empty ground truth, true audio): {f["num_frames"]}; the model puts a mask on '
        f'{f["masked_percent"]:.1f}% of them (empty_fp_rate) and stays empty on {f["empty_percent"]:.1f}%; '
        f'{f["pixel_percent"]:.2f}% of their pixels are predicted foreground.'
    )


def _fmt(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.2f}'


def summary_markdown(s: Dict) -> str:
    """The figures as a markdown table (pasted into docs/demo_results.md)."""
    rows = [('true audio', s['test_true_audio']), ('shuffled audio (`--shuffle-audio 0`)', s['test_shuffled_audio'])]
    lines = [
        f'Command: `{s["command"]}`',
        '',
        f'Config `{s["config"]}`, {s["schedule"]} on CPU, seed {s["seed"]}, toy S4 clips train/val/test '
        f'{s["num_videos"]}; best checkpoint by val mIoU: `{osp.basename(s["checkpoint"])}`.',
        '',
        '| test split | mIoU | F (0.5) | max F | legacy mIoU | legacy F | empty-GT FP rate |',
        '|---|---|---|---|---|---|---|',
    ]
    for name, m in rows:
        lines.append(
            f'| {name} | '
            + ' | '.join(
                f'{m.get(k, float("nan")):.2f}'
                for k in ('mIoU', 'Fscore', 'maxFscore', 'legacy_mIoU', 'legacy_Fscore', 'empty_fp_rate')
            )
            + ' |'
        )
    neg = s['negative_audio']
    lines += [
        '',
        f'mIoU gap (true - shuffled audio): **{s["mIoU_gap"]:.2f}** points.',
        '',
        _silent_line(s),
        '',
        'Negative audio (`tools/analysis_tools/robustness.py`; silence, noise and off-screen sound: every '
        'frame\'s ground truth is empty):',
        '',
        format_table(neg['conditions'], neg['combined']),
        '',
        f'**{s["stays_empty_text"]}**',
        '',
        f'Video demo (`demo/video_demo.py` on an mp4 made of 2 toy test clips with their audio): mIoU of its '
        f'masks against the toy ground truth: {_fmt(s["video_demo"]["mIoU_vs_gt"])}.',
        '',
        f'Time: {s["total_s"]:.0f} s ({", ".join(f"{k} {v:.0f} s" for k, v in s["timings_s"].items())}).',
        '',
    ]
    return '\n'.join(lines)


def print_summary(s: Dict) -> None:
    t, u = s['test_true_audio'], s['test_shuffled_audio']
    lines = [
        '',
        '=' * 72,
        'CCFormer main job: summary',
        '=' * 72,
        f'config      {s["config"]}  ({s["schedule"]} on CPU, seed {s["seed"]})',
        f'checkpoint  {s["checkpoint"]}',
        f'toy S4 clips train/val/test: {s["num_videos"]}',
        f'{"":24s}{"mIoU":>8s}{"F":>8s}{"maxF":>8s}{"legacy mIoU":>13s}',
        f'{"test, true audio":24s}{t.get("mIoU", float("nan")):8.2f}{t.get("Fscore", float("nan")):8.2f}'
        f'{t.get("maxFscore", float("nan")):8.2f}{t.get("legacy_mIoU", float("nan")):13.2f}',
        f'{"test, shuffled audio":24s}{u.get("mIoU", float("nan")):8.2f}{u.get("Fscore", float("nan")):8.2f}'
        f'{u.get("maxFscore", float("nan")):8.2f}{u.get("legacy_mIoU", float("nan")):13.2f}',
        f'mIoU gap (true - shuffled audio): {s["mIoU_gap"]:.2f} points',
        _silent_line(s),
        'negative audio (every frame\'s ground truth empty under silence / noise / off-screen):',
        format_table(s['negative_audio']['conditions'], s['negative_audio']['combined']),
        s['stays_empty_text'],
        f'overlays: {s["overlay_images"]} images in {s["overlay_dir"]}',
        f'video demo: {s["video_demo"]["overlay"]} (masks in {s["video_demo"]["masks"]}); '
        f'mIoU of its masks vs toy GT: {_fmt(s["video_demo"]["mIoU_vs_gt"])}',
        f'time: {s["total_s"]:.0f} s  {s["timings_s"]}',
        '=' * 72,
    ]
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
