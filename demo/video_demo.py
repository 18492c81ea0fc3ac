"""Segment the sounding objects of a video file with CCFormer.

Usage::

    python demo/video_demo.py VIDEO CONFIG CHECKPOINT --out OUT [--fps 1] [--device cpu]
    python demo/video_demo.py VIDEO --backend onnxruntime --onnx model.onnx --out OUT [--threads N]

The video (mp4, mkv, webm, ... with an audio track; decoded with PyAV, no system ffmpeg needed) is sampled like
AVSBench (one frame per second, 1/16 s before the end of each second; ``--fps N`` samples N frames a second), cut
into T-frame windows with their 0.96-s VGGish log-mel examples, and segmented. Written to OUT/:

* ``<name>_overlay.mp4``: the sampled frames with the masks overlaid, played at ``--fps`` frames per second, with
  the (16 kHz) soundtrack;
* ``masks/<name>_<k>.png``: one mask per sampled frame (k = 1, 2, ...; 0/255 for S4/MS3 models like the AVSBench
  ground truth, class indices 0..70 for AVSS models).

``--backend onnxruntime`` runs a file written by ``tools/deployment/pytorch2onnx.py`` with ONNX Runtime
(``projects.ccformer.deployment.ORTSegmentor``): no config, checkpoint, mmcv or mmseg needed (``docs/deployment.md``).
"""

import argparse
import os
import os.path as osp
import sys
from typing import List, Sequence

import cv2
import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='CCFormer video demo (audio-visual segmentation)')
    parser.add_argument('video', help='video file with an audio track (mp4, mkv, webm, ...)')
    parser.add_argument('config', nargs='?', help='model config file (PyTorch backend)')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (PyTorch backend)')
    parser.add_argument(
        '--backend',
        choices=['pytorch', 'onnxruntime'],
        default='pytorch',
        help='pytorch (config + checkpoint) or onnxruntime (--onnx, from tools/deployment/pytorch2onnx.py)',
    )
    parser.add_argument('--onnx', default=None, help='ONNX file for --backend onnxruntime')
    parser.add_argument(
        '--threads', type=int, default=None, help='onnxruntime: intra-op threads (default: one per core)'
    )
    parser.add_argument('--out', required=True, help='output directory (overlay video + per-frame masks)')
    parser.add_argument(
        '--fps', type=int, default=1, help='frames sampled per second (1 = AVSBench, default; higher = denser masks)'
    )
    parser.add_argument(
        '--device', default=None, help="device, e.g. 'cpu' or 'cuda:0' (default: cuda:0 if available, else cpu)"
    )
    parser.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='frame size fed to the model (default: 224 224 as AVSBench; onnxruntime: the size '
        'the file was exported at)',
    )
    parser.add_argument('--batch-size', type=int, default=1, help='T-frame windows per forward pass')
    parser.add_argument('--opacity', type=float, default=0.5, help='mask opacity in the overlay video')
    parser.add_argument('--codec', default=None, help='video codec (default: libx264 if PyAV has it, else mpeg4)')
    parser.add_argument('--no-audio', action='store_true', help='do not put the soundtrack in the overlay video')
    parser.add_argument(
        '--compile',
        default=None,
        choices=['default', 'reduce-overhead', 'max-autotune', 'cudagraphs'],
        help='torch.compile the model (model.compile_cfg): inductor modes (the second window pays '
        'minutes of compile time, so they pay off on long videos; reduce-overhead adds CUDA '
        'graphs on a GPU), or cudagraphs: CUDA graphs of the eager kernels, seconds to set up '
        '(GPU only)',
    )
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='load only the matching part of a checkpoint whose keys do not fit the model (by '
        'default such a checkpoint is refused)',
    )
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='load CHECKPOINT with full unpickling; only for files from a trusted source (by '
        'default checkpoints are read weights-only and never execute code)',
    )
    parser.add_argument(
        '--dtype',
        default='float32',
        choices=['float32', 'bfloat16'],
        help='weights and activations dtype (bfloat16: faster on recent GPUs, masks within bf16 rounding of float32)',
    )
    args = parser.parse_args(argv)
    if args.backend == 'pytorch' and not (args.config and args.checkpoint):
        parser.error('the PyTorch backend needs CONFIG and CHECKPOINT (or --backend onnxruntime --onnx FILE)')
    if args.backend == 'onnxruntime':
        if not args.onnx:
            parser.error('--backend onnxruntime needs --onnx FILE (written by tools/deployment/pytorch2onnx.py)')
        unused = [
            name
            for name, value in (
                ('CONFIG/CHECKPOINT', args.config),
                ('--compile', args.compile),
                ('--dtype', args.dtype != 'float32'),
                ('--device', args.device),
            )
            if value
        ]
        if unused:
            parser.error(
                f'--backend onnxruntime runs the ONNX file on the CPU: {", ".join(unused)} apply to the '
                'PyTorch backend only'
            )
    elif args.onnx or args.threads:
        parser.error('--onnx and --threads apply to --backend onnxruntime only')
    return args


def save_masks(out_dir: str, stem: str, masks: Sequence[np.ndarray], binary: bool) -> List[str]:
    """Write ``<stem>_<k>.png`` (k from 1): 0/255 for binary models, class indices otherwise."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for k, mask in enumerate(masks, start=1):
        path = osp.join(out_dir, f'{stem}_{k}.png')
        img = (mask > 0).astype(np.uint8) * 255 if binary else mask.astype(np.uint8)
        if not cv2.imwrite(path, img):
            raise OSError(f'cannot write {path}')
        paths.append(path)
    return paths


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from tqdm import tqdm

    from projects.ccformer.apis import (
        get_num_frames,
        init_avs_model,
        num_video_windows,
        read_video_audio,
        segment_video,
        write_video,
    )
    from projects.ccformer.datasets.palette import overlay_mask, resolve_palette

    if not osp.isfile(args.video):
        sys.exit(f'error: video file {args.video} does not exist')
    if osp.exists(args.out) and not osp.isdir(args.out):  # before any work (engine.run_checks needs mmseg)
        sys.exit(
            f'error: --out {args.out}: this is an existing file, but --out takes a folder (overlay video and '
            f'masks are written into it). Pass a new or existing folder.'
        )
    device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    compile_cfg = dict(backend='cudagraphs') if args.compile == 'cudagraphs' else dict(mode=args.compile)
    cfg_options = {'model.compile_cfg': compile_cfg} if args.compile else None
    if args.backend == 'onnxruntime':
        from projects.ccformer.deployment import ORTSegmentor

        try:
            model = ORTSegmentor(args.onnx, num_threads=args.threads)
        except (FileNotFoundError, ValueError) as err:
            sys.exit(f'error: {err}')
    else:
        from projects.ccformer.engine.safe_checkpoint import (
            CheckpointMismatchError,
            CorruptCheckpointError,
            UnsafeCheckpointError,
            trust_checkpoint,
        )

        if args.trust_checkpoint:
            trust_checkpoint(args.checkpoint)
        try:
            model = init_avs_model(
                args.config,
                args.checkpoint,
                device=device,
                cfg_options=cfg_options,
                dtype=None if args.dtype == 'float32' else args.dtype,
                strict=not args.allow_partial_checkpoint,
            )
        except (CheckpointMismatchError, CorruptCheckpointError, UnsafeCheckpointError, FileNotFoundError) as err:
            sys.exit(f'error: {err}')
    img_size = (
        tuple(args.img_size) if args.img_size else (model.input_size if args.backend == 'onnxruntime' else (224, 224))
    )
    num_frames = get_num_frames(model)
    try:
        total = num_video_windows(args.video, num_frames, args.fps)
        with tqdm(total=total, desc=f'segmenting {osp.basename(args.video)}', unit='window') as pbar:
            result = segment_video(
                model, args.video, fps=args.fps, img_size=img_size, batch_size=args.batch_size, progress=pbar.update
            )
    except ValueError as err:
        sys.exit(f'error: {err}')

    stem = osp.splitext(osp.basename(args.video))[0]
    os.makedirs(args.out, exist_ok=True)
    masks = result['masks']
    num_labels = max(2, max(int(m.max()) for m in masks) + 1)
    meta = getattr(model, 'dataset_meta', None) or {}
    num_labels = max(num_labels, len(meta.get('classes') or []))
    binary = num_labels <= 2
    mask_paths = save_masks(osp.join(args.out, 'masks'), stem, masks, binary)
    palette = resolve_palette(meta, num_labels)
    overlays = [overlay_mask(f, m, palette, args.opacity) for f, m in zip(result['frames'], masks)]
    video_out = osp.join(args.out, f'{stem}_overlay.mp4')
    waveform = None if args.no_audio else read_video_audio(args.video)
    if waveform is not None:
        waveform = waveform[: int(len(masks) / args.fps * 16000)]
    write_video(video_out, overlays, args.fps, waveform, codec=args.codec)
    fg = [float((m > 0).mean()) for m in masks]
    print(
        f'{len(masks)} frames in {len(result["windows"])} windows of T={num_frames}; '
        f'mean foreground fraction {np.mean(fg):.3f}'
    )
    if result['audio_padded_seconds']:
        print(
            f'the audio track is {result["audio_padded_seconds"]:.2f} s shorter than the picture: the last '
            f'{result["audio_padded_seconds"]:.2f} s were segmented as silence'
        )
    print(f'overlay video: {video_out}')
    print(f'masks: {osp.dirname(mask_paths[0])}/ ({len(mask_paths)} PNG files)')
    return dict(video=video_out, masks=mask_paths, foreground=fg, audio_padded_seconds=result['audio_padded_seconds'])


if __name__ == '__main__':
    main()
