"""Audio conditions: play a clip with its own sound, another clip's sound, silence, noise or off-screen sound.

Evaluation (:class:`AudioConditionDataset`, ``tools/test.py --audio-condition``) and training
(:class:`NegativeAudioDataset`) wrap an AVS dataset and change only the audio a clip is heard with, and the ground
truth where nothing on screen can be heard any more.

Conditions (``AUDIO_CONDITIONS``):

* ``original``: the clip's own audio.
* ``shuffled``: the audio of another clip (seeded derangement); the ground truth is kept. Measures how much the
  model listens (its sounding objects may be visible here too).
* ``silence``: what a digitally silent wav gives through the VGGish front end (``log(0 + 0.01)`` in every bin).
* ``noise``: Gaussian white noise at ``noise_dbfs`` RMS relative to full scale (evaluation default
  ``EVAL_NOISE_DBFS`` = -20 dBFS, i.e. RMS 0.1 on the [-1, 1] scale), through the same front end.
* ``offscreen``: the audio of another clip none of whose audible kinds is visible in this clip (see
  :func:`dataset_clip_kinds` for where the kinds come from).
* ``offscreen_recorded``: windows of real recordings from a folder given by the user
  (:class:`~projects.ccformer.datasets.sound_bank.SoundBank`, ``--offscreen-audio DIR``), leaving out the
  recordings whose kind is visible in the clip where both are known.

``silence``, ``noise``, ``offscreen`` and ``offscreen_recorded`` are *negative* conditions
(``EMPTY_GT_CONDITIONS``; training draws the first three, ``NEGATIVE_CONDITIONS``): nothing on screen makes the
sound, so every frame's ground truth becomes empty (AVSS: background) and the metrics' empty-ground-truth
false-positive rates are the figures to read.

Modules: ``synthesis`` (log-mel silence and noise), ``clip_kinds`` (what each clip shows and sounds,
``OffscreenPool``), ``base`` (condition names, the wrappers' shared part), ``evaluation``
(``AudioConditionDataset``, ``AudioSwapDataset``), ``training`` (``NegativeAudioDataset``).
"""

from .base import AUDIO_CONDITIONS, EMPTY_GT_CONDITIONS, NEGATIVE_CONDITIONS, RECORDED_CONDITION
from .clip_kinds import KINDS_FILE, Kinds, OffscreenPool, dataset_clip_kinds, entry_kinds, load_kinds_file
from .evaluation import EVAL_NOISE_DBFS, AudioConditionDataset, AudioSwapDataset, derangement
from .synthesis import NOISE_COLORS, ambient_wave, noise_logmel, silence_logmel
from .training import NegativeAudioDataset

__all__ = [
    'AUDIO_CONDITIONS',
    'NEGATIVE_CONDITIONS',
    'EMPTY_GT_CONDITIONS',
    'RECORDED_CONDITION',
    'EVAL_NOISE_DBFS',
    'KINDS_FILE',
    'Kinds',
    'OffscreenPool',
    'dataset_clip_kinds',
    'entry_kinds',
    'load_kinds_file',
    'derangement',
    'NOISE_COLORS',
    'ambient_wave',
    'noise_logmel',
    'silence_logmel',
    'AudioConditionDataset',
    'AudioSwapDataset',
    'NegativeAudioDataset',
]
