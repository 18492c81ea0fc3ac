"""Calibrate a checkpoint's presence decision on the validation split; write the calibrated checkpoint.

Usage::

    python tools/analysis_tools/calibrate_presence.py CONFIG CHECKPOINT --out CALIBRATED.pth \\
        [--data-root DIR] [--offscreen-audio DIR] [--conditions silence noise offscreen offscreen_recorded] \\
        [--audio-seed 0] [--force] [--cfg-options k=v ...]

The validation clips are heard with their own audio (a frame is positive when its ground truth has foreground,
negative when it is empty) and under each negative condition (every frame negative; ``offscreen_recorded`` through
the recordings of ``--offscreen-audio``). A model built with ``empty_when_silent`` empties digitally silent frames
by rule, so they are left out (``silence`` is not among its default conditions). The shift of the presence logit that
maximises the balanced accuracy ``(TPR + TNR) / 2`` over these frames
(``projects/ccformer/engine/presence_calibration.py``) is added to ``decode_head.presence_head.bias``; everything
else in the checkpoint is kept, and the shift with the accuracies before and after goes into
``meta['presence_calibration']``. The input checkpoint is never changed; ``--out`` is
written atomically and an existing file is replaced only with ``--force``.
"""

import argparse
import copy
import logging
import os.path as osp
import sys

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from projects.ccformer.apis import init_avs_model
from projects.ccformer.datasets.audio_conditions import EMPTY_GT_CONDITIONS, RECORDED_CONDITION
from projects.ccformer.datasets.sound_bank import resolve_bank_root
from projects.ccformer.engine import set_data_root
from projects.ccformer.engine.presence_calibration import (
    PRESENCE_BIAS_KEY,
    balanced_accuracy,
    calibrated_state_dict,
    choose_margin,
    presence_scores,
)
from projects.ccformer.evaluation.robustness import audio_condition_dataset
from projects.ccformer.utils.atomic import atomic_path
from projects.ccformer.utils.checkpoint import checkpoint_state_dict, load_checkpoint_file
from projects.ccformer.utils.config import check_input_files


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Calibrate the presence decision of a CCFormer checkpoint')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (left unchanged)')
    parser.add_argument('--out', required=True, help='calibrated checkpoint to write')
    parser.add_argument('--force', action='store_true', help='replace --out when it exists')
    parser.add_argument('--data-root', help='dataset directory (sets data_root of the validation dataset)')
    parser.add_argument(
        '--conditions',
        nargs='+',
        choices=EMPTY_GT_CONDITIONS,
        help='negative audio conditions heard on the validation clips (default: silence noise offscreen, and '
        f'{RECORDED_CONDITION} with --offscreen-audio; silence is left out of the default for a model with '
        'empty_when_silent, which empties digitally silent frames whatever the presence says)',
    )
    parser.add_argument(
        '--offscreen-audio',
        metavar='DIR',
        help='folder of real recordings of things not on screen (one sub-folder per kind)',
    )
    parser.add_argument('--audio-seed', type=int, default=0, help='seed of the negative audio')
    parser.add_argument('--device', default='cpu', help="device of the model, e.g. 'cuda' (default: cpu)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def check_paths(args: argparse.Namespace) -> None:
    """Clear errors before anything is built: missing inputs, ``--out`` equal to the input or already there."""
    check_input_files(args.config, args.checkpoint, allow_urls=False)  # the checkpoint is copied: a local file
    if osp.abspath(args.out) == osp.abspath(args.checkpoint):
        raise ValueError(f'--out {args.out} is the input checkpoint: write the calibrated model to another file')
    if osp.exists(args.out) and not args.force:
        raise FileExistsError(f'{args.out} exists: pass --force to replace it, or choose another --out')
    if args.offscreen_audio is not None:
        args.offscreen_audio = resolve_bank_root(args.offscreen_audio)
    if args.offscreen_audio is not None and not osp.isdir(args.offscreen_audio):
        raise FileNotFoundError(f'--offscreen-audio {args.offscreen_audio} is not a folder of recordings')


def conditions_of(args: argparse.Namespace) -> list:
    conditions = list(args.conditions or ['silence', 'noise', 'offscreen'])
    if args.offscreen_audio and RECORDED_CONDITION not in conditions and args.conditions is None:
        conditions.append(RECORDED_CONDITION)
    if RECORDED_CONDITION in conditions and not args.offscreen_audio:
        raise ValueError(f'condition {RECORDED_CONDITION} needs --offscreen-audio DIR')
    if args.offscreen_audio and RECORDED_CONDITION not in conditions:
        raise ValueError(
            f'--offscreen-audio is used by the condition {RECORDED_CONDITION} only: add it to --conditions'
        )
    return conditions


def collect(model, cfg: Config, conditions, seed: int, sound_bank) -> dict:
    """``{condition: (scores, labels)}`` on the validation split, ``original`` first."""
    out = {}
    for condition in ['original'] + list(conditions):
        dataset = copy.deepcopy(cfg.val_dataloader.dataset)
        bank = sound_bank if condition == RECORDED_CONDITION else None
        loader_cfg = dict(copy.deepcopy(cfg.val_dataloader))
        loader_cfg['dataset'] = audio_condition_dataset(dataset, condition, seed, sound_bank=bank)
        try:
            loader = Runner.build_dataloader(loader_cfg)
        except ValueError as err:  # off-screen sound of clips whose visible kinds are unknown
            if condition != 'offscreen':
                raise
            print_log(f'condition offscreen left out: {err}', logger='current', level=logging.WARNING)
            continue
        out[condition] = presence_scores(model, loader)
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    check_paths(args)
    conditions = conditions_of(args)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    set_data_root(cfg, args.data_root, keys=('val_dataloader',))
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = init_avs_model(cfg, args.checkpoint, device=args.device)
    if args.conditions is None and getattr(model, 'empty_when_silent', False):
        conditions.remove('silence')  # decided by rule (CCFormer.empty_when_silent), not by the presence
    per_condition = collect(model, cfg, conditions, args.audio_seed, args.offscreen_audio)
    scores = np.concatenate([s for s, _ in per_condition.values()])
    labels = np.concatenate([lab for _, lab in per_condition.values()])
    margin = choose_margin(scores, labels)
    before, after = balanced_accuracy(scores, labels), balanced_accuracy(scores, labels, margin)

    checkpoint = load_checkpoint_file(args.checkpoint)
    state = calibrated_state_dict(checkpoint_state_dict(checkpoint, args.checkpoint), margin)
    checkpoint = dict(checkpoint) if isinstance(checkpoint, dict) and 'state_dict' in checkpoint else {}
    checkpoint['state_dict'] = state
    raw, raw_key = checkpoint.get('ema_state_dict'), f'module.{PRESENCE_BIAS_KEY}'
    if isinstance(raw, dict) and raw_key in raw:
        # configs that average the weights (EMAHook) keep the raw ones for resuming: they get the same shift, so a
        # run resumed from the calibrated copy decides as it does
        checkpoint['ema_state_dict'] = {**raw, raw_key: raw[raw_key] + margin}
    meta = dict(checkpoint.get('meta') or {})
    meta['presence_calibration'] = dict(
        margin=margin,
        source=osp.basename(args.checkpoint),
        conditions=list(per_condition),
        frames=int(labels.size),
        positive_frames=int(labels.sum()),
        before=before,
        after=after,
    )
    checkpoint['meta'] = meta
    with atomic_path(args.out) as tmp:
        torch.save(checkpoint, tmp)

    print(
        f'presence calibrated on {labels.size} validation frames ({int(labels.sum())} with foreground; '
        f'conditions: {", ".join(per_condition)})'
    )
    for name, res in (('before', before), ('after', after)):
        print(f'  {name}: TPR {res["TPR"]:.1f}  TNR {res["TNR"]:.1f}  balanced {res["balanced"]:.1f}')
    print(f'  shift of the presence logit: {margin:+.4f}; calibrated checkpoint: {args.out}')
    return meta['presence_calibration']


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        sys.exit(f'calibrate_presence.py: error: {err}')
