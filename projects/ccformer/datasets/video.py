"""Video and audio I/O with PyAV (no system ffmpeg): AVSBench frame sampling, audio extraction, encoding.

* :func:`sample_frame_indices` / :func:`read_video_frames` - the frames AVSBench keeps (frame k of second k is
  taken 1/16 s before the end of that second), decoded to RGB arrays; :func:`video_info` - rate, duration, size.
* :func:`read_video_audio` - the first audio track as a 16 kHz mono waveform (official quantisation);
  :func:`pad_with_silence`, :func:`frame_audio_examples` - one 0.96-s log-mel example per sampled frame;
  :func:`video_logmel_examples` - the first n examples of a file's sound.
* :func:`window_starts` - T-frame windows over the sampled frames.
* :func:`write_video` / :func:`pick_video_codec` - encode RGB frames (and a mono waveform) into a video file.
"""

import logging
import math
import os.path as osp
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import print_log

AUDIO_RATE = 16000
EXAMPLE_SAMPLES = 15600  # samples giving exactly one 96-frame VGGish example (400 + 95 * 160)
EXAMPLE_HOP_SAMPLES = 15360  # 0.96 s: official examples start at 0, 0.96, 1.92, ... s
# Official preprocessing keeps candidate i = 15 of 16 per second: frame k is at (k - 1/16) s.
FRAME_OFFSET = 15 / 16


def sample_frame_indices(
    num_video_frames: int, video_fps: float, num_seconds: int, sample_fps: int = 1, start_second: int = 0
) -> List[int]:
    """Indices of the frames AVSBench keeps (the official preprocessing), generalised to ``sample_fps`` per second.

    Per sampling slot ``l`` (``sample_fps`` slots a second) the official rule takes candidate ``i = 15`` of the
    16 ``int(l * step + i / 16 * step)`` with ``step = round(video_fps) / sample_fps``: the frame 1/16 of a slot
    before its end. Indices past the end are clamped to the last frame. ``start_second`` skips whole seconds.
    """
    fps = max(1, int(round(video_fps)))
    step = fps / sample_fps
    last = max(0, num_video_frames - 1)
    first = start_second * sample_fps
    return [min(int(k * step + FRAME_OFFSET * step), last) for k in range(first, first + num_seconds * sample_fps)]


def _open(path: str):
    import av

    if not osp.isfile(path):
        raise FileNotFoundError(f'video file {path} does not exist')
    try:
        return av.open(path)
    except av.error.FFmpegError as err:  # type: ignore[attr-defined]
        raise ValueError(f'{path}: PyAV cannot open this file ({err}); is it a video file?') from err


def video_info(path: str) -> Dict[str, float]:
    """``dict(fps, duration (s), width, height, has_audio)`` of a video file (PyAV)."""
    with _open(path) as container:
        if not container.streams.video:
            raise ValueError(f'{path}: no video stream')
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        elif stream.frames and fps:
            duration = stream.frames / fps
        else:
            duration = 0.0
        return dict(
            fps=fps,
            duration=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            has_audio=bool(container.streams.audio),
            frames=int(stream.frames or 0),
        )


def read_video_frames(
    path: str, sample_fps: int = 1, num_seconds: Optional[int] = None
) -> Tuple[List[np.ndarray], List[float], Dict]:
    """Decode a video with PyAV and keep AVSBench's frames (:func:`sample_frame_indices`).

    Args:
        path: video file (mp4, mkv, webm, avi, ...).
        sample_fps: frames kept per second (1 = AVSBench).
        num_seconds: seconds to cover; default ``floor(duration)``.

    Returns:
        ``(frames, timestamps, info)``: RGB uint8 ``(H, W, 3)`` frames, their times in seconds, :func:`video_info`.
    """
    info = video_info(path)
    if not info['fps']:
        raise ValueError(f'{path}: the video stream has no frame rate')
    seconds = int(math.floor(info['duration'] + 1e-6)) if num_seconds is None else num_seconds
    total = info['frames'] or int(round(info['duration'] * info['fps']))
    wanted = sample_frame_indices(total if total else 10**9, info['fps'], seconds, sample_fps)
    if not wanted:
        return [], [], info
    needed = set(wanted)
    last_needed = max(needed)
    kept: Dict[int, np.ndarray] = {}
    last_frame, count = None, 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        for frame in container.decode(stream):
            if count in needed:
                kept[count] = frame.to_ndarray(format='rgb24')
            last_frame = frame
            count += 1
            if count > last_needed:
                break
    if last_frame is None:
        raise ValueError(f'{path}: no video frame could be decoded')
    # official rule: an index past the end takes the video's last frame
    last_img = None if len(kept) == len(needed) else last_frame.to_ndarray(format='rgb24')
    frames = [kept[i] if i in kept else last_img for i in wanted]
    fps = max(1, int(round(info['fps'])))
    timestamps = [min(i, count - 1) / fps for i in wanted]
    return frames, timestamps, info


def read_video_audio(path: str, target_rate: int = AUDIO_RATE) -> np.ndarray:
    """Decode the first audio track with PyAV -> mono float64 ``[samples]`` at ``target_rate`` Hz.

    Channels are averaged and the result resampled with ``resampy`` (as the official VGGish front end), then
    quantised to 16-bit like the official 16 kHz wav (value / 32768).

    Raises:
        ValueError: the file has no audio track (with the hint to add one), or the track holds NaN / inf samples
            (naming the file and the time span).
    """
    from projects.ccformer.datasets.audio import check_finite_audio, resample, to_mono

    with _open(path) as container:
        if not container.streams.audio:
            raise ValueError(
                f'{path} has no audio track: audio-visual segmentation needs the sound. Use a '
                f'video with audio (e.g. mux one in with PyAV or `ffmpeg -i {osp.basename(path)} '
                f'-i sound.wav -c:v copy out.mp4`).'
            )
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.rate)
        chunks = []
        for frame in container.decode(stream):
            arr = frame.to_ndarray()
            if frame.format.is_planar:
                arr = arr.T  # (channels, samples) -> (samples, channels)
            else:
                arr = arr.reshape(-1, len(frame.layout.channels))
            if np.issubdtype(arr.dtype, np.integer):
                arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max + 1)
            chunks.append(arr.astype(np.float64))
    if not chunks:
        raise ValueError(f'{path}: the audio track is empty')
    wave = np.concatenate(chunks, axis=0)
    check_finite_audio(wave, f'{path} (audio track)', rate)
    wave = resample(to_mono(wave), rate, target_rate)
    return np.clip(np.round(wave * 32768.0), -32768, 32767) / 32768.0


def examples_samples(num_examples: int) -> int:
    """16 kHz samples that give ``num_examples`` complete 0.96-s log-mel examples (0.96 s each + 15 ms)."""
    return (num_examples - 1) * EXAMPLE_HOP_SAMPLES + EXAMPLE_SAMPLES


def frame_audio_samples(timestamps: Sequence[float], sample_fps: int = 1) -> int:
    """16 kHz samples :func:`frame_audio_examples` reads for frames at ``timestamps`` (the picture's audio)."""
    if sample_fps == 1:
        return examples_samples(len(timestamps))
    return max([EXAMPLE_SAMPLES] + [int(round(t * AUDIO_RATE)) for t in timestamps])


def pad_with_silence(waveform: np.ndarray, num_samples: int, source: str) -> Tuple[np.ndarray, float]:
    """Pad a 16 kHz waveform with zeros (silence) to ``num_samples``; report how much in the log.

    For segmenting what sounds, audio missing at the end of a video is silence (not a repeat of its last second).

    Returns:
        ``(waveform, padded seconds)``.
    """
    missing = int(num_samples) - len(waveform)
    if missing <= 0:
        return waveform, 0.0
    seconds = missing / AUDIO_RATE
    print_log(
        f'{source}: the audio is {len(waveform) / AUDIO_RATE:.2f} s, {seconds:.2f} s shorter than the '
        f'picture; the missing {seconds:.2f} s are taken as silence',
        logger='current',
        level=logging.WARNING,
    )
    return np.concatenate([waveform, np.zeros(missing, dtype=waveform.dtype)]), seconds


def frame_audio_examples(waveform: np.ndarray, timestamps: Sequence[float], sample_fps: int = 1) -> np.ndarray:
    """One 0.96 s log-mel example per sampled frame: ``(n, 1, 96, 64)``.

    With ``sample_fps=1`` frame k gets the official k-th example (samples ``[15360 k, 15360 k + 15600)``, i.e.
    the 0.96-s blocks starting at 0, 0.96, 1.92 s); denser sampling takes the 0.96-s window ending at the frame's
    time. Windows past the end of the audio use its last complete window (official repeat padding).
    """
    from projects.ccformer.datasets.audio import waveform_to_logmel

    n = len(waveform)
    if n < EXAMPLE_SAMPLES:
        raise ValueError(
            f'the audio is {n / AUDIO_RATE:.2f} s long; at least {EXAMPLE_SAMPLES / AUDIO_RATE:.3f} s '
            f'is needed for one log-mel example'
        )
    starts = []
    for k, t in enumerate(timestamps):
        start = k * EXAMPLE_HOP_SAMPLES if sample_fps == 1 else int(round(t * AUDIO_RATE)) - EXAMPLE_SAMPLES
        starts.append(min(max(start, 0), n - EXAMPLE_SAMPLES))
    examples = [waveform_to_logmel(waveform[s : s + EXAMPLE_SAMPLES], AUDIO_RATE) for s in starts]
    return np.stack([e[0] for e in examples])[:, None].astype(np.float32)


def video_logmel_examples(path: str, num_examples: int) -> np.ndarray:
    """The first ``num_examples`` official log-mel examples ``(n, 96, 64)`` of a video's (or audio file's) sound.

    :func:`read_video_audio` (16 kHz, 16-bit like the official wav), padded with silence to ``num_examples``
    examples (:func:`pad_with_silence`), then the VGGish front end: example k covers ``[0.96 k, 0.96 k + 0.975)`` s.
    """
    from projects.ccformer.datasets.audio import waveform_to_logmel

    waveform, _ = pad_with_silence(read_video_audio(path), examples_samples(num_examples), path)
    return waveform_to_logmel(waveform, AUDIO_RATE)


def window_starts(num_items: int, window: int) -> List[int]:
    """Start indices of T-frame windows covering ``num_items`` frames: non-overlapping, the last one aligned to
    the end (it overlaps the previous window when ``num_items`` is not a multiple of T)."""
    if num_items < window:
        return []
    starts = list(range(0, num_items - window + 1, window))
    if starts[-1] + window < num_items:
        starts.append(num_items - window)
    return starts


def pick_video_codec(preferred: Optional[str] = None) -> str:
    """A video encoder of PyAV's bundled FFmpeg: ``preferred`` if usable, else libx264 (H.264), else mpeg4.

    (``write_video`` asks for ``libvpx`` (VP8) for ``.webm`` files, whose container takes no H.264.)
    """
    import av

    for name in ([preferred] if preferred else []) + ['libx264', 'h264', 'mpeg4']:
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, 'w')
                return name
            except Exception:  # listed, but not an encoder in this build
                continue
    raise RuntimeError('PyAV has neither an H.264 nor an MPEG-4 encoder; reinstall av (pip install av)')


def write_video(
    path: str,
    frames: Sequence[np.ndarray],
    fps: Union[int, float, Fraction] = 1,
    waveform: Optional[np.ndarray] = None,
    sample_rate: int = AUDIO_RATE,
    codec: Optional[str] = None,
    repeat: int = 1,
    crf: Optional[int] = None,
) -> str:
    """Encode RGB uint8 frames (and optionally a mono float waveform in [-1, 1] as AAC) with PyAV.

    Args:
        path: output file; the container follows the extension (``.mp4``, ``.mkv``, ``.webm``...).
        frames: ``(H, W, 3)`` RGB uint8 frames (odd sizes are cropped by one pixel for yuv420p).
        fps: frame rate of the written stream.
        waveform: ``[samples]`` mono audio, or None for a silent (audio-less) file.
        sample_rate: rate of ``waveform``.
        codec: video encoder (default :func:`pick_video_codec`).
        repeat: write every frame this many times (hold a frame for ``repeat / fps`` seconds).
        crf: H.264 constant rate factor (lower = better quality), e.g. 12 for near-lossless test videos.

    Returns:
        The codec used.
    """
    import av

    webm = path.lower().endswith('.webm')
    codec = pick_video_codec(codec or ('libvpx' if webm else None))
    h, w = frames[0].shape[:2]
    h2, w2 = h - h % 2, w - w % 2
    audio_codec = 'libopus' if webm else 'aac'
    with av.open(path, mode='w') as container:
        vstream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        vstream.width, vstream.height, vstream.pix_fmt = w2, h2, 'yuv420p'
        if crf is not None and codec in ('libx264', 'h264'):
            vstream.options = {'crf': str(crf)}
        astream = None
        if waveform is not None:
            astream = container.add_stream(audio_codec, rate=sample_rate)
            astream.layout = 'mono'
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h2, :w2]), format='rgb24')
            for _ in range(repeat):
                for packet in vstream.encode(frame):
                    container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            pcm = np.clip(np.round(np.asarray(waveform, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
            for start in range(0, len(pcm), 1024):
                aframe = av.AudioFrame.from_ndarray(pcm[None, start : start + 1024].copy(), format='s16', layout='mono')
                aframe.sample_rate = sample_rate
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)


__all__ = [
    'AUDIO_RATE',
    'sample_frame_indices',
    'video_info',
    'read_video_frames',
    'read_video_audio',
    'examples_samples',
    'frame_audio_samples',
    'pad_with_silence',
    'frame_audio_examples',
    'video_logmel_examples',
    'window_starts',
    'pick_video_codec',
    'write_video',
]
