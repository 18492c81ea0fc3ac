"""Segment the sounding objects of a video file with CCFormer.

Usage::

    python demo/video_demo.py VIDEO CONFIG CHECKPOINT --out OUT [--fps 1] [--device cpu] [--overwrite]
    python demo/video_demo.py VIDEO --backend onnxruntime --onnx model.onnx --out OUT [--threads N]

The video (mp4, mkv, webm, ... with an audio track; decoded with PyAV, no system ffmpeg needed) is sampled like
AVSBench (one frame per second, 1/16 s before the end of each second; ``--fps N`` samples N frames a second), cut
into T-frame windows with their 0.96-s VGGish log-mel examples, resized to the size the config runs the model at
(``--img-size H W`` overrides; an ONNX file runs at its export size) and segmented window by window: memory does
not grow with the video's length. Written to OUT/:

* ``<name>_overlay.mp4``: the sampled frames with the masks overlaid, played at ``--fps`` frames per second, with
  the (16 kHz) soundtrack;
* ``masks/<name>_<k>.png``: one mask per sampled frame (k = 1, 2, ...; 0/255 for S4/MS3 models like the AVSBench
  ground truth, class indices 0..70 for AVSS models).

The run writes into a new hidden folder beside OUT and renames it to OUT when it has finished, so OUT never mixes
two runs and a failed run leaves nothing behind. An OUT holding files is refused unless ``--overwrite`` (then the
earlier OUT is replaced once the new run is complete). A model whose output is NaN / inf (broken weights) stops
with an error naming the file.

``--backend onnxruntime`` runs a file written by ``tools/deployment/pytorch2onnx.py`` with ONNX Runtime
(``projects.ccformer.deployment.ORTSegmentor``): no config, checkpoint, mmcv or mmseg needed (``docs/deployment.md``).
"""

import argparse
import os
import os.path as osp
import shutil
import sys

import numpy as np


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'{value} is not a positive integer (1 or more)')
    return value


def _opacity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'{value} is not between 0 (invisible) and 1 (opaque)')
    return value


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
        '--threads', type=_positive_int, default=None, help='onnxruntime: intra-op threads (default: one per core)'
    )
    parser.add_argument('--out', required=True, help='output directory (overlay video + per-frame masks)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an --out folder that holds files (of an earlier run); it is replaced only once this run has '
        'finished',
    )
    parser.add_argument(
        '--fps',
        type=_positive_int,
        default=1,
        help='frames sampled per second (1 = AVSBench, default; higher = denser masks)',
    )
    parser.add_argument(
        '--device', default=None, help="device, e.g. 'cpu' or 'cuda:0' (default: cuda:0 if available, else cpu)"
    )
    parser.add_argument(
        '--img-size',
        type=_positive_int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='frame size fed to the model (default: the size the config runs the model at: its test pipeline\'s '
        'resize, data_preprocessor.size or crop_size, e.g. 64 64 for the tiny configs, 224 224 for AVSBench; '
        'onnxruntime: the size the file was exported at)',
    )
    parser.add_argument('--batch-size', type=_positive_int, default=1, help='T-frame windows per forward pass')
    parser.add_argument(
        '--opacity', type=_opacity, default=0.5, help='mask opacity in the overlay video (0 to 1, default 0.5)'
    )
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


def check_out_dir(out: str, overwrite: bool) -> None:
    """Refuse ``--out`` naming a file, or a folder holding files without ``--overwrite`` (before any work)."""
    if osp.exists(out) and not osp.isdir(out):
        sys.exit(
            f'error: --out {out}: this is an existing file, but --out takes a folder (overlay video and '
            f'masks are written into it). Pass a new or existing folder.'
        )
    if osp.isdir(out) and os.listdir(out) and not overwrite:
        names = sorted(os.listdir(out))
        listing = ', '.join(names[:3]) + (f' and {len(names) - 3} more' if len(names) > 3 else '')
        sys.exit(
            f'error: --out {out} already holds files ({listing}), e.g. of an earlier run. Choose a new folder, or '
            'pass --overwrite to replace them once this run has finished.'
        )


def _swap_in(work: str, out: str) -> None:
    """Move the finished run folder ``work`` to ``out``; an earlier ``out`` is removed only after that."""
    from projects.ccformer.utils.atomic import temp_name

    old = None
    if osp.exists(out):
        old = temp_name(out)
        os.rename(out, old)
    try:
        os.rename(work, out)
    except OSError:
        if old is not None:
            os.rename(old, out)  # put the earlier run back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_model(args, device: str):
    """The model of ``--backend`` (exits with the error for a missing / unsafe / unfitting file)."""
    if args.backend == 'onnxruntime':
        from projects.ccformer.deployment import ORTSegmentor

        try:
            return ORTSegmentor(args.onnx, num_threads=args.threads)
        except (FileNotFoundError, ValueError) as err:
            sys.exit(f'error: {err}')
    from projects.ccformer.apis import init_avs_model
    from projects.ccformer.engine.safe_checkpoint import (
        CheckpointMismatchError,
        CorruptCheckpointError,
        UnsafeCheckpointError,
        trust_checkpoint,
    )

    if args.trust_checkpoint:
        trust_checkpoint(args.checkpoint)
    compile_cfg = dict(backend='cudagraphs') if args.compile == 'cudagraphs' else dict(mode=args.compile)
    try:
        return init_avs_model(
            args.config,
            args.checkpoint,
            device=device,
            cfg_options={'model.compile_cfg': compile_cfg} if args.compile else None,
            dtype=None if args.dtype == 'float32' else args.dtype,
            strict=not args.allow_partial_checkpoint,
        )
    except (CheckpointMismatchError, CorruptCheckpointError, UnsafeCheckpointError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')


def run(args, result, work: str, stem: str) -> dict:
    """Write the masks and the overlay video of ``result`` (a ``VideoSegmentation``) into ``work``, frame by frame."""
    from projects.ccformer.datasets.palette import overlay_mask, resolve_palette
    from projects.ccformer.datasets.video import AUDIO_RATE, VideoWriter
    from projects.ccformer.utils.atomic import write_image

    meta = result.dataset_meta or {}
    num_labels = max(2, result.num_classes, len(meta.get('classes') or []))
    binary = num_labels <= 2
    palette = resolve_palette(meta, num_labels)
    mask_dir = osp.join(work, 'masks')
    os.makedirs(mask_dir, exist_ok=True)
    foreground, count = [], 0
    with VideoWriter(osp.join(work, f'{stem}_overlay.mp4'), args.fps, not args.no_audio, codec=args.codec) as writer:
        for item in result:
            img = (item.mask > 0).astype(np.uint8) * 255 if binary else item.mask.astype(np.uint8)
            write_image(osp.join(mask_dir, f'{stem}_{item.index + 1}.png'), img)
            writer.write_frame(overlay_mask(item.frame, item.mask, palette, args.opacity))
            if not args.no_audio:  # the soundtrack up to the end of the frames written so far
                end = (item.index + 1) * AUDIO_RATE // args.fps
                writer.write_audio(result.waveform[writer.samples_written : end])
            foreground.append(float((item.mask > 0).mean()))
            count += 1
    return dict(foreground=foreground, count=count)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from tqdm import tqdm

    from projects.ccformer.apis import segment_video
    from projects.ccformer.utils.atomic import temp_name
    from projects.ccformer.utils.outputs import NonFiniteOutputError

    if not osp.isfile(args.video):
        sys.exit(f'error: video file {args.video} does not exist')
    check_out_dir(args.out, args.overwrite)  # before any work
    device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    model = load_model(args, device)
    stem = osp.splitext(osp.basename(args.video))[0]
    try:
        result = segment_video(model, args.video, fps=args.fps, img_size=args.img_size, batch_size=args.batch_size)
    except (ValueError, OSError) as err:
        sys.exit(f'error: {err}')
    size = result.img_size or result.segmentor.input_size  # None: resized by the pipeline / the ONNX runtime
    if size is not None:
        source = '--img-size' if args.img_size else 'the export size' if args.backend == 'onnxruntime' else 'the config'
        print(f'frames resized to {size[0]} x {size[1]} for the model ({source})')
    else:
        print(
            f'frames go to the model at the video\'s size ({result.info["height"]} x {result.info["width"]}): the '
            'config names no input size; pass --img-size H W to resize them'
        )
    work = temp_name(args.out)
    os.makedirs(work)
    try:
        with tqdm(total=len(result.windows), desc=f'segmenting {osp.basename(args.video)}', unit='window') as pbar:
            result.progress = pbar.update
            written = run(args, result, work, stem)
        _swap_in(work, args.out)
    except (ValueError, OSError, NonFiniteOutputError) as err:
        shutil.rmtree(work, ignore_errors=True)
        sys.exit(f'error: {err}'.replace(work, args.out))  # name the file as it would have been in --out
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    fg = written['foreground']
    print(
        f'{written["count"]} frames in {len(result.windows)} windows of T={result.num_frames}; '
        f'mean foreground fraction {np.mean(fg):.3f}'
    )
    if result.audio_padded_seconds:
        print(
            f'the audio track is {result.audio_padded_seconds:.2f} s shorter than the picture: the last '
            f'{result.audio_padded_seconds:.2f} s were segmented as silence'
        )
    video_out = osp.join(args.out, f'{stem}_overlay.mp4')
    mask_paths = [osp.join(args.out, 'masks', f'{stem}_{k}.png') for k in range(1, written['count'] + 1)]
    print(f'overlay video: {video_out}')
    print(f'masks: {osp.join(args.out, "masks")}/ ({len(mask_paths)} PNG files)')
    return dict(video=video_out, masks=mask_paths, foreground=fg, audio_padded_seconds=result.audio_padded_seconds)


if __name__ == '__main__':
    main()
