"""Browser demo: upload a video (or pick the generated sample) and see what CCFormer segments, second by second.

Usage::

    pip install -r requirements/demo.txt          # Gradio (optional requirement)
    python demo/gradio_demo.py CONFIG CHECKPOINT [--device cpu] [--fps 1] [--port 7860] [--host 127.0.0.1]

then open the printed address. The page takes a video with sound (mp4, mkv, webm, ...; decoded with PyAV), segments
it with the project's API (:func:`projects.ccformer.apis.segment_video`: AVSBench's sampling, T-frame windows,
frames resized to the config's input size) and shows the overlay video (with its soundtrack) and one mask per
sampled frame, captioned with its time. "Sample" holds a video made of generated toy clips
(:mod:`projects.ccformer.datasets.toy_video`), so the page works without a video of your own.
Outputs are written under ``--out`` (default: a new temporary folder), one subfolder per request.
"""

import argparse
import os
import os.path as osp
import tempfile
import time
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='CCFormer browser demo (Gradio)')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file (read weights-only)')
    parser.add_argument('--device', default=None, help="'cpu', 'cuda:0', ... (default: cuda:0 if available)")
    parser.add_argument('--fps', type=int, default=1, help='frames sampled per second (1 = AVSBench)')
    parser.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help="frame size fed to the model (default: the config's, e.g. 224 224 for AVSBench, 64 64 tiny)",
    )
    parser.add_argument('--opacity', type=float, default=0.5, help='mask opacity in the overlay video')
    parser.add_argument('--out', default=None, help='folder for the results (default: a new temporary folder)')
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on (0.0.0.0: every interface)')
    parser.add_argument('--port', type=int, default=7860, help='port (0: a free one)')
    parser.add_argument('--no-sample', action='store_true', help='do not generate the toy sample video')
    return parser.parse_args(argv)


def mask_image(mask: np.ndarray, palette: Sequence[Tuple[int, int, int]], binary: bool) -> np.ndarray:
    """An RGB picture of a label map: white on black for binary models, palette colours otherwise."""
    if binary:
        return np.repeat(((mask > 0).astype(np.uint8) * 255)[..., None], 3, axis=2)
    return np.asarray(palette, dtype=np.uint8)[mask.astype(np.int64)]


def segment_to_files(
    model,
    video: str,
    out_dir: str,
    fps: int = 1,
    img_size: Optional[Tuple[int, int]] = None,
    opacity: float = 0.5,
    progress: Optional[Callable[[int], None]] = None,
) -> dict:
    """Segment ``video`` and write ``overlay.mp4`` (with the soundtrack) and ``masks/mask_<k>.png`` to ``out_dir``.

    Returns:
        dict with ``overlay`` (path), ``masks`` (list of ``(path, caption)``, caption = the frame's time),
        ``summary`` (markdown).
    """
    from projects.ccformer.apis import get_num_frames, read_video_audio, segment_video, write_video
    from projects.ccformer.datasets.palette import overlay_mask, resolve_palette

    result = segment_video(model, video, fps=fps, img_size=img_size, progress=progress)
    masks = result['masks']
    meta = getattr(model, 'dataset_meta', None) or {}
    num_labels = max(2, len(meta.get('classes') or []), max(int(m.max()) for m in masks) + 1)
    binary = num_labels <= 2
    palette = resolve_palette(meta, num_labels)
    os.makedirs(osp.join(out_dir, 'masks'), exist_ok=True)
    items = []
    for k, (mask, t) in enumerate(zip(masks, result['timestamps']), start=1):
        path = osp.join(out_dir, 'masks', f'mask_{k}.png')
        if not cv2.imwrite(path, mask_image(mask, palette, binary)[..., ::-1]):
            raise OSError(f'cannot write {path}')
        items.append((path, f'{t:.2f} s'))
    overlays = [overlay_mask(f, m, palette, opacity) for f, m in zip(result['frames'], masks)]
    overlay = osp.join(out_dir, 'overlay.mp4')
    waveform = read_video_audio(video)[: int(len(masks) / fps * 16000)]
    write_video(overlay, overlays, fps, waveform)
    fg = 100 * float(np.mean([(m > 0).mean() for m in masks]))
    lines = [
        f'**{len(masks)} frames** ({fps} a second) in {len(result["windows"])} windows of '
        f'T={get_num_frames(model)}; a sounding object is masked on {fg:.1f}% of the pixels.'
    ]
    if result['audio_padded_seconds']:
        lines.append(f'The sound ends {result["audio_padded_seconds"]:.2f} s early: those seconds count as silence.')
    return dict(overlay=overlay, masks=items, summary='\n\n'.join(lines))


def make_sample(out_dir: str, img_size: int = 64, seed: int = 0) -> str:
    """A 10-s mp4 of two generated toy S4 clips with their sound (``sample.mp4`` in ``out_dir``)."""
    from projects.ccformer.datasets.toy import generate_toy_avsbench
    from projects.ccformer.datasets.toy_video import make_toy_video

    root = osp.join(out_dir, 'toy_s4')
    generate_toy_avsbench(root, 's4', {'test': 2}, seed=seed, img_size=img_size)
    path = osp.join(out_dir, 'sample.mp4')
    make_toy_video(root, path)
    return path


def build_demo(
    model,
    out_root: str,
    fps: int = 1,
    img_size: Optional[Tuple[int, int]] = None,
    opacity: float = 0.5,
    samples: Sequence[str] = (),
):
    """The Gradio page (``gradio.Blocks``): a video input, the sample(s), a Segment button, and the outputs."""
    import gradio as gr

    from projects.ccformer.apis import get_num_frames, num_video_windows

    def run(video: Optional[str], progress=gr.Progress()) -> Tuple[str, List[Tuple[str, str]], str]:
        if not video:
            raise gr.Error('Upload a video with sound first (or pick the sample below).')
        out_dir = osp.join(out_root, time.strftime('%Y%m%d_%H%M%S') + f'_{time.monotonic_ns() % 10**6:06d}')
        try:
            total = num_video_windows(video, get_num_frames(model), fps)
        except (ValueError, FileNotFoundError) as err:
            raise gr.Error(str(err)) from err
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            progress((done[0], max(total, 1)), desc='segmenting', unit='windows')

        try:
            res = segment_to_files(model, video, out_dir, fps, img_size, opacity, progress=step)
        except ValueError as err:  # no audio track, too short, ...: shown in the page
            raise gr.Error(str(err)) from err
        return res['overlay'], res['masks'], res['summary']

    with gr.Blocks(title='CCFormer audio-visual segmentation') as demo:
        gr.Markdown(
            '# CCFormer: segment what sounds\n'
            'Upload a video **with sound** (or pick the sample), then press *Segment*. The model looks at '
            f'{fps} frame(s) a second with the sound around each, in windows of T={get_num_frames(model)} frames.'
        )
        with gr.Row():
            with gr.Column():
                video_in = gr.Video(label='Video with sound', sources=['upload'], elem_id='video-in')
                button = gr.Button('Segment', variant='primary', elem_id='segment')
                if samples:
                    gr.Examples(examples=[[s] for s in samples], inputs=[video_in], label='Sample')
            with gr.Column():
                video_out = gr.Video(label='Overlay', elem_id='overlay', interactive=False)
                summary = gr.Markdown(elem_id='summary')
        masks = gr.Gallery(label='Masks, one per sampled frame', columns=5, elem_id='masks', interactive=False)
        button.click(run, inputs=[video_in], outputs=[video_out, masks, summary])
    return demo


def main(argv=None):
    args = parse_args(argv)
    import gradio  # noqa: F401  (fail here, with the hint, before loading the model)
    import torch

    from projects.ccformer.apis import init_avs_model
    from projects.ccformer.utils import model_input_size

    device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    model = init_avs_model(args.config, args.checkpoint, device=device)
    img_size = model_input_size(model.cfg, args.img_size, '--img-size', args.config)
    out_root = osp.abspath(args.out or tempfile.mkdtemp(prefix='ccformer_gradio_'))
    os.makedirs(out_root, exist_ok=True)
    samples = [] if args.no_sample else [make_sample(osp.join(out_root, 'sample'), img_size=max(img_size))]
    demo = build_demo(model, out_root, args.fps, img_size, args.opacity, samples)
    print(f'results go to {out_root}')
    demo.queue().launch(server_name=args.host, server_port=args.port or None, allowed_paths=[out_root])


if __name__ == '__main__':
    try:
        main()
    except ModuleNotFoundError as err:
        if err.name != 'gradio':
            raise
        raise SystemExit('demo/gradio_demo.py needs Gradio: pip install -r requirements/demo.txt') from err
