"""Video files made of toy AVSBench-S4 clips (:mod:`.toy`): the samples of ``make demo`` and the browser demo.

* :func:`toy_test_clips` - the clips of a toy split as :class:`AVSBenchS4Dataset` lists them (frame, mask and wav
  paths);
* :func:`make_toy_video` - an mp4 (H.264 + AAC via PyAV) of some of them: each frame held for 1 s, with the clips'
  audio, so AVSBench's one-frame-a-second sampling gets the clips' frames back.
"""

from typing import List, Optional

import numpy as np


def toy_test_clips(data_root: str, num_clips: Optional[int] = None, split: str = 'test') -> List[dict]:
    """The first ``num_clips`` clips (all by default) of a toy S4 split, as ``AVSBenchS4Dataset`` lists them."""
    from .avsbench import AVSBenchS4Dataset

    dataset = AVSBenchS4Dataset(data_root=data_root, split=split, audio_source='wav', pipeline=[])
    return [dataset.get_data_info(i) for i in range(len(dataset) if num_clips is None else num_clips)]


def make_toy_video(data_root: str, out_path: str, num_clips: int = 2, video_fps: int = 8) -> List[str]:
    """Write an mp4 of the first ``num_clips`` toy test clips of ``data_root`` (a toy S4 root).

    Returns:
        The video ids used, in order.
    """
    import cv2
    import soundfile as sf

    from .video import write_video

    frames, audio, ids = [], [], []
    for clip in toy_test_clips(data_root, num_clips):
        ids.append(clip['video_id'])
        frames += [cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB) for path in clip['frame_paths']]
        wav, rate = sf.read(clip['audio_path'], dtype='float32')
        wav = wav[: 5 * rate] if wav.ndim == 1 else wav[: 5 * rate].mean(1)
        audio.append(np.pad(wav, (0, 5 * rate - len(wav))))
    write_video(out_path, frames, video_fps, np.concatenate(audio), sample_rate=rate, repeat=video_fps, crf=12)
    return ids


__all__ = ['toy_test_clips', 'make_toy_video']
