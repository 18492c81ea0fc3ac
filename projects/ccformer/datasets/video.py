"""Video and audio I/O with PyAV (no system ffmpeg): AVSBench frame sampling, audio extraction, encoding.

* :func:`sample_frame_indices` / :func:`iter_video_frames` / :func:`read_video_frames` - the frames AVSBench keeps
  (frame k of second k is taken 1/16 s before the end of that second), decoded to RGB arrays one at a time;
  :func:`video_info` - rate, duration, size.
* :func:`read_video_audio_pcm` / :func:`read_video_audio` - the first audio track as a 16 kHz mono waveform
  (official quantisation), decoded and resampled block by block; :func:`pad_with_silence`,
  :func:`frame_audio_examples` - one 0.96-s log-mel example per sampled frame;
  :func:`video_logmel_examples` - the first n examples of a file's sound.
* :func:`window_starts` - T-frame windows over the sampled frames.
* :class:`VideoWriter` / :func:`write_video` / :func:`pick_video_codec` - encode RGB frames (and a mono waveform)
  into a video file, frame by frame, written atomically (``utils/atomic.py``).

Memory does not grow with the video's length except for the 16 kHz soundtrack, kept as int16 (32 kB a second).
"""

import errno
import logging
import math
import os
import os.path as osp
from fractions import Fraction
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import print_log

from ..utils.atomic import atomic_path

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


def iter_video_frames(
    path: str, sample_fps: int = 1, num_seconds: Optional[int] = None, info: Optional[Dict] = None
) -> Iterator[Tuple[int, np.ndarray, float]]:
    """Decode a video with PyAV and yield AVSBench's frames (:func:`sample_frame_indices`) one at a time.

    Args:
        path: video file (mp4, mkv, webm, avi, ...).
        sample_fps: frames kept per second (1 = AVSBench).
        num_seconds: seconds to cover; default ``floor(duration)``.
        info: :func:`video_info` of the file, if already read.

    Yields:
        ``(k, frame, timestamp)``: the k-th sampled frame (k from 0) as an RGB uint8 ``(H, W, 3)`` array and its time
        in seconds. Sampled indices past the end of the stream get its last frame (the official rule). Only the
        current frame is held in memory.
    """
    info = info or video_info(path)
    if not info['fps']:
        raise ValueError(f'{path}: the video stream has no frame rate')
    seconds = int(math.floor(info['duration'] + 1e-6)) if num_seconds is None else num_seconds
    total = info['frames'] or int(round(info['duration'] * info['fps']))
    wanted = sample_frame_indices(total if total else 10**9, info['fps'], seconds, sample_fps)
    if not wanted:
        return
    fps = max(1, int(round(info['fps'])))
    slot, count, last_frame = 0, 0, None
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        for frame in container.decode(stream):
            img = None
            while slot < len(wanted) and wanted[slot] == count:
                img = frame.to_ndarray(format='rgb24') if img is None else img
                yield slot, img, count / fps
                slot += 1
            last_frame = frame
            count += 1
            if slot == len(wanted):
                return
    if last_frame is None:
        raise ValueError(f'{path}: no video frame could be decoded')
    last_img = last_frame.to_ndarray(format='rgb24')  # official rule: an index past the end takes the last frame
    for k in range(slot, len(wanted)):
        yield k, last_img, (count - 1) / fps


def read_video_frames(
    path: str, sample_fps: int = 1, num_seconds: Optional[int] = None
) -> Tuple[List[np.ndarray], List[float], Dict]:
    """All of :func:`iter_video_frames` in lists (for short clips: every frame is kept in memory).

    Returns:
        ``(frames, timestamps, info)``: RGB uint8 ``(H, W, 3)`` frames, their times in seconds, :func:`video_info`.
    """
    info = video_info(path)
    frames, timestamps = [], []
    for _, img, t in iter_video_frames(path, sample_fps, num_seconds, info):
        frames.append(img)
        timestamps.append(t)
    return frames, timestamps, info


class _BlockResampler:
    """Resample a mono stream block by block to the rate of :func:`~projects.ccformer.datasets.audio.resample`
    (resampy's ``kaiser_best``) with enough context on both sides of each block that every output sample sees the
    same input samples as when the whole signal is resampled at once (equal up to float rounding, about 1e-10).

    ``push(samples)`` returns the output samples that are final so far; ``finish()`` the rest.
    """

    BLOCK_SECONDS = 10

    def __init__(self, rate: int, target: int) -> None:
        g = math.gcd(rate, target)
        self.rate, self.target, self.up, self.down = rate, target, target // g, rate // g
        # the filter reaches 64 zero crossings of the lower rate on each side: in input samples, 64 * rate / min rate
        reach = int(math.ceil(64 * rate / min(rate, target))) + 16
        self.context = -(-reach // self.down) * self.down  # a multiple of `down`: block borders fall on output samples
        self.block = -(-self.BLOCK_SECONDS * rate // self.down) * self.down
        self.buffer = np.zeros(0, np.float64)  # input samples from `buffer_start` on
        self.pending: List[np.ndarray] = []  # input chunks not yet appended to `buffer`
        self.available = 0  # input samples in `buffer` and `pending`
        self.buffer_start = 0  # input index of buffer[0] (a multiple of `down`)
        self.start = 0  # first input sample whose output is not produced yet (a multiple of `down`)

    def _resample(self, segment: np.ndarray, stop: Optional[int]) -> np.ndarray:
        """Output samples of input ``[start, stop)`` (``stop`` None: to the end) from ``segment``, the input from
        ``buffer_start`` on."""
        from .audio import resample

        out = resample(segment, self.rate, self.target)
        first = (self.start - self.buffer_start) * self.up // self.down
        last = len(out) if stop is None else (stop - self.buffer_start) * self.up // self.down
        return out[first:last]

    def _gather(self) -> None:
        if self.pending:
            self.buffer = np.concatenate([self.buffer, *self.pending])
            self.pending = []

    def push(self, samples: np.ndarray) -> np.ndarray:
        self.pending.append(samples)
        self.available += len(samples)
        outs = []
        while self.buffer_start + self.available >= self.start + self.block + self.context:
            self._gather()
            stop = self.start + self.block
            outs.append(self._resample(self.buffer[: stop + self.context - self.buffer_start], stop))
            drop = max(0, stop - self.context - self.buffer_start)  # keep the next block's left context
            self.buffer = self.buffer[drop:]
            self.available -= drop
            self.buffer_start += drop
            self.start = stop
        return np.concatenate(outs) if outs else np.zeros(0, np.float64)

    def finish(self) -> np.ndarray:
        self._gather()
        if self.buffer_start + len(self.buffer) <= self.start:
            return np.zeros(0, np.float64)
        return self._resample(self.buffer, None)


def iter_video_audio_pcm(path: str, target_rate: int = AUDIO_RATE) -> Iterator[np.ndarray]:
    """Decode the first audio track with PyAV block by block -> mono int16 ``[samples]`` chunks at ``target_rate``.

    Each decoded frame is mixed to mono (channels averaged) at once; resampling (``resampy``, as the official VGGish
    front end) runs on 10-s blocks with context (:class:`_BlockResampler`); the result is quantised to 16-bit like
    the official 16 kHz wav. Memory holds about one block, whatever the length of the track.

    Raises:
        ValueError: the file has no audio track (with the hint to add one), the track is empty, or it holds NaN /
            inf samples (naming the file and the time span).
    """
    from .audio import non_finite_error

    with _open(path) as container:
        if not container.streams.audio:
            raise ValueError(
                f'{path} has no audio track: audio-visual segmentation needs the sound. Use a '
                f'video with audio (e.g. mux one in with PyAV or `ffmpeg -i {osp.basename(path)} '
                f'-i sound.wav -c:v copy out.mp4`).'
            )
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or stream.rate)
        resampler = _BlockResampler(rate, target_rate) if rate != target_rate else None
        decoded, bad, first_bad, last_bad = 0, 0, -1, -1
        for frame in container.decode(stream):
            arr = frame.to_ndarray()
            if frame.format.is_planar:
                arr = arr.T  # (channels, samples) -> (samples, channels)
            else:
                arr = arr.reshape(-1, len(frame.layout.channels))
            if np.issubdtype(arr.dtype, np.integer):
                arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max + 1)
            arr = arr.astype(np.float64)
            finite = np.isfinite(arr)
            if not finite.all():
                rows = np.flatnonzero(~finite.all(axis=1))
                bad += int((~finite).sum())
                first_bad = decoded + int(rows[0]) if first_bad < 0 else first_bad
                last_bad = decoded + int(rows[-1])
            decoded += len(arr)
            if bad:
                continue  # the error is raised once the whole span is known
            mono = arr.mean(axis=1)
            out = resampler.push(mono) if resampler is not None else mono
            if len(out):
                yield _quantise(out)
    if bad:
        raise non_finite_error(f'{path} (audio track)', bad, first_bad, last_bad, rate)
    if not decoded:
        raise ValueError(f'{path}: the audio track is empty')
    if resampler is not None:
        tail = resampler.finish()
        if len(tail):
            yield _quantise(tail)


def _quantise(wave: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 as the official 16-bit wav (round, clip)."""
    return np.clip(np.round(wave * 32768.0), -32768, 32767).astype(np.int16)


def read_video_audio_pcm(path: str, target_rate: int = AUDIO_RATE) -> np.ndarray:
    """The first audio track as mono int16 PCM ``[samples]`` at ``target_rate`` (:func:`iter_video_audio_pcm`);
    a 16 kHz track takes 32 kB a second."""
    chunks = list(iter_video_audio_pcm(path, target_rate))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def read_video_audio(path: str, target_rate: int = AUDIO_RATE) -> np.ndarray:
    """Decode the first audio track with PyAV -> mono float64 ``[samples]`` at ``target_rate`` Hz.

    Channels are averaged and the result resampled with ``resampy`` (as the official VGGish front end), then
    quantised to 16-bit like the official 16 kHz wav (value / 32768): :func:`read_video_audio_pcm` / 32768.

    Raises:
        ValueError: the file has no audio track (with the hint to add one), or the track holds NaN / inf samples
            (naming the file and the time span).
    """
    return read_video_audio_pcm(path, target_rate) / 32768.0


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


def frame_audio_examples(
    waveform: np.ndarray, timestamps: Sequence[float], sample_fps: int = 1, first: int = 0
) -> np.ndarray:
    """One 0.96 s log-mel example per sampled frame: ``(n, 1, 96, 64)``.

    With ``sample_fps=1`` frame k gets the official k-th example (samples ``[15360 k, 15360 k + 15600)``, i.e.
    the 0.96-s blocks starting at 0, 0.96, 1.92 s); denser sampling takes the 0.96-s window ending at the frame's
    time. Windows past the end of the audio use its last complete window (official repeat padding).

    Args:
        waveform: the 16 kHz track, float in [-1, 1] or int16 PCM (scaled by 1 / 32768).
        timestamps: times of the frames (s).
        sample_fps: frames sampled per second.
        first: index k of the first of these frames among the video's sampled frames (a window of a longer video).
    """
    from projects.ccformer.datasets.audio import waveform_to_logmel

    n = len(waveform)
    if n < EXAMPLE_SAMPLES:
        raise ValueError(
            f'the audio is {n / AUDIO_RATE:.2f} s long; at least {EXAMPLE_SAMPLES / AUDIO_RATE:.3f} s '
            f'is needed for one log-mel example'
        )
    scale = 1 / 32768.0 if waveform.dtype == np.int16 else 1.0
    starts = []
    for k, t in enumerate(timestamps, start=first):
        start = k * EXAMPLE_HOP_SAMPLES if sample_fps == 1 else int(round(t * AUDIO_RATE)) - EXAMPLE_SAMPLES
        starts.append(min(max(start, 0), n - EXAMPLE_SAMPLES))
    examples = [waveform_to_logmel(waveform[s : s + EXAMPLE_SAMPLES] * scale, AUDIO_RATE) for s in starts]
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


class VideoWriter:
    """Encode RGB uint8 frames (and a mono waveform as AAC / Opus) into a video file with PyAV, frame by frame.

    The file is written to a temporary file beside ``path`` and renamed into place by :meth:`close` (the context
    manager's exit without an error), so an earlier file of that name survives a failed or interrupted write; a
    write error (disk full) raises ``OSError`` naming ``path``.

    Args:
        path: output file; the container follows the extension (``.mp4``, ``.mkv``, ``.webm``...).
        fps: frame rate of the written stream.
        audio (bool): add a mono audio stream (fed with :meth:`write_audio`).
        sample_rate: rate of the audio.
        codec: video encoder (default :func:`pick_video_codec`; ``libvpx`` for ``.webm``).
        crf: H.264 constant rate factor (lower = better quality), e.g. 12 for near-lossless test videos.

    Shapes: frames ``(H, W, 3)`` (odd sizes are cropped by one pixel for yuv420p; every frame has the first one's
    size); audio ``[samples]`` float in [-1, 1] or int16.
    """

    def __init__(
        self,
        path: str,
        fps: Union[int, float, Fraction] = 1,
        audio: bool = False,
        sample_rate: int = AUDIO_RATE,
        codec: Optional[str] = None,
        crf: Optional[int] = None,
    ) -> None:
        self.path = path
        self.fps = fps
        self.sample_rate = sample_rate
        webm = path.lower().endswith('.webm')
        self.codec = pick_video_codec(codec or ('libvpx' if webm else None))
        self.audio_codec = ('libopus' if webm else 'aac') if audio else None
        self.crf = crf
        self._target = atomic_path(path)
        self._tmp = self._target.__enter__()
        self._container = None
        self._vstream = self._astream = None
        self._size = None
        self.frames_written = 0
        self.samples_written = 0

    def _open(self, h: int, w: int) -> None:
        import av

        self._container = av.open(self._tmp, mode='w')
        vstream = self._container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1001))
        vstream.width, vstream.height, vstream.pix_fmt = w - w % 2, h - h % 2, 'yuv420p'
        if self.crf is not None and self.codec in ('libx264', 'h264'):
            vstream.options = {'crf': str(self.crf)}
        self._vstream, self._size = vstream, (h - h % 2, w - w % 2)
        if self.audio_codec is not None:
            self._astream = self._container.add_stream(self.audio_codec, rate=self.sample_rate)
            self._astream.layout = 'mono'

    def write_frame(self, img: np.ndarray, repeat: int = 1) -> None:
        """Append one RGB uint8 frame, shown for ``repeat / fps`` seconds."""
        import av

        if self._container is None:
            self._open(*img.shape[:2])
        h, w = self._size
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h, :w]), format='rgb24')
        for _ in range(repeat):
            for packet in self._vstream.encode(frame):
                self._container.mux(packet)
        self.frames_written += repeat

    def write_audio(self, waveform: np.ndarray) -> None:
        """Append mono samples (float in [-1, 1] or int16) to the audio stream."""
        import av

        if self._astream is None:
            raise ValueError(f'{self.path}: the writer has no audio stream (audio=False, or no frame written yet)')
        pcm = np.asarray(waveform)
        if pcm.dtype != np.int16:
            pcm = _quantise(np.asarray(pcm, np.float64))
        for start in range(0, len(pcm), 1024):
            aframe = av.AudioFrame.from_ndarray(pcm[None, start : start + 1024].copy(), format='s16', layout='mono')
            aframe.sample_rate = self.sample_rate
            aframe.pts = self.samples_written
            self.samples_written += aframe.samples
            for packet in self._astream.encode(aframe):
                self._container.mux(packet)

    def close(self) -> str:
        """Flush the encoders, close the file and move it into place; returns the codec used."""
        try:
            if self._container is None:
                raise ValueError(f'{self.path}: no frame was written')
            for stream in (self._vstream, self._astream):
                if stream is not None:
                    for packet in stream.encode():
                        self._container.mux(packet)
            self._container.close()
            self._container = None
            if os.path.getsize(self._tmp) == 0:
                raise OSError(errno.EIO, 'the encoder wrote an empty file')
        except BaseException as err:
            replacement = self.abort(err)
            if replacement is err:
                raise
            raise replacement from err
        self._target.__exit__(None, None, None)
        return self.codec

    def abort(self, err: Optional[BaseException] = None) -> BaseException:
        """Drop the temporary file (``path`` stays as it was); returns the error to raise for ``err`` (an
        ``OSError`` naming ``path`` for a write error)."""
        container, self._container = self._container, None
        self._vstream = self._astream = None
        if container is not None:
            try:
                container.close()
            except Exception:  # a full disk fails the trailer too; the file is dropped anyway
                pass
            del container
        err = err if err is not None else RuntimeError(f'{self.path}: writing was aborted')
        try:
            self._target.__exit__(type(err), err, err.__traceback__)
        except BaseException as raised:
            return raised
        return err

    def __enter__(self) -> 'VideoWriter':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        replacement = self.abort(exc)
        if replacement is not exc:  # a write error: raised as an OSError naming the file
            raise replacement from exc


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
    """Encode RGB uint8 frames (and optionally a mono float waveform in [-1, 1]) with :class:`VideoWriter`.

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
    with VideoWriter(path, fps, waveform is not None, sample_rate, codec, crf) as writer:
        for img in frames:
            writer.write_frame(img, repeat)
        if waveform is not None:
            writer.write_audio(waveform)
    return writer.codec


__all__ = [
    'AUDIO_RATE',
    'sample_frame_indices',
    'video_info',
    'iter_video_frames',
    'read_video_frames',
    'iter_video_audio_pcm',
    'read_video_audio_pcm',
    'read_video_audio',
    'examples_samples',
    'frame_audio_samples',
    'pad_with_silence',
    'frame_audio_examples',
    'video_logmel_examples',
    'window_starts',
    'pick_video_codec',
    'VideoWriter',
    'write_video',
]
