"""Inference API (:mod:`.inference`) and the video I/O it uses (:mod:`projects.ccformer.datasets.video`)."""

from ..datasets.video import (
    frame_audio_examples,
    pick_video_codec,
    read_video_audio,
    read_video_frames,
    sample_frame_indices,
    video_info,
    window_starts,
    write_video,
)
from .inference import (
    audio_to_examples,
    get_num_frames,
    inference_avs_model,
    init_avs_model,
    num_video_windows,
    segment_video,
)

__all__ = [
    'init_avs_model',
    'inference_avs_model',
    'segment_video',
    'read_video_frames',
    'read_video_audio',
    'audio_to_examples',
    'frame_audio_examples',
    'sample_frame_indices',
    'video_info',
    'window_starts',
    'num_video_windows',
    'get_num_frames',
    'write_video',
    'pick_video_codec',
]
