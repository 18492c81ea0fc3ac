from .inference import (audio_to_examples, frame_audio_examples, get_num_frames, inference_avs_model,
                        init_avs_model, num_video_windows, read_video_audio, read_video_frames,
                        pick_video_codec, sample_frame_indices, segment_video, video_info,
                        window_starts, write_video)

__all__ = [
    'init_avs_model', 'inference_avs_model', 'segment_video', 'read_video_frames', 'read_video_audio',
    'audio_to_examples', 'frame_audio_examples', 'sample_frame_indices', 'video_info', 'window_starts',
    'num_video_windows', 'get_num_frames', 'write_video', 'pick_video_codec'
]
