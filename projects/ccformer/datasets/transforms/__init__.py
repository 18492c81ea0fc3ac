"""Clip transforms for AVS (registered in mmseg ``TRANSFORMS``)."""

from .formatting import PackAVSInputs
from .loading import LoadAVSAudio, LoadAVSFrames, LoadAVSMasks
from .processing import AVSSResize, ClipConsistentTransform

__all__ = ['LoadAVSFrames', 'LoadAVSMasks', 'LoadAVSAudio', 'AVSSResize', 'ClipConsistentTransform', 'PackAVSInputs']
