# Training that segments only what sounds (docs/robustness.md). A config takes it as a further base next to the
# config it makes robust and writes (the *-robust configs in configs/ccformer/, tiny-robust included, do):
#   model = dict(neck=_base_.robust_neck, decode_head=_base_.robust_decode_head, empty_when_silent=True)
#   (S4: robust_decode_head_s4)
#   train_dataloader = dict(dataset=dict(
#       _delete_=True, type='NegativeAudioDataset', dataset=_base_.train_dataloader.dataset))
#   custom_hooks = _base_.custom_hooks + [_base_.robust_ema, _base_.robust_gate_check]
#   (robust_ema_s4 / _ms3 / _avss for AVSBench)
# AVSS configs take robust_semantic_head instead (no BCE: their per-pixel cross-entropy covers empty frames).
# This file cannot set `model` and `train_dataloader` itself: mmengine refuses two bases of one config that set the
# same top-level key ("Duplicate key is not allowed among bases"), and wrapping the parent's train dataset moves its
# keys one level down, which a merge cannot express; so the config names the parts (`_base_.x` reads a variable of
# its bases).
#
# * Frame-local audio: the EIM's AVE / VAE and the FPN's audio attention see only their own frame's audio
#   (audio_window=0) and the query generator reads only its frame's audio (audio_context='frame'); with clip-wide
#   attention the model segments what sounds anywhere in the clip.
# * Presence: AudioVisualPresence scores per frame whether a visible object matches the sound and gates the masks.
# * Digital silence: CCFormer(empty_when_silent=True) empties the masks of frames whose audio example is digitally
#   silent (the rule that gives them the presence target 0 in training), whatever the model predicts there; a muted
#   sound track, or audio padded with silence, then never gets a mask. Inference only.
# * BCE next to Dice (binary heads): Dice is constant on frames with empty targets, BCE is not.
# * NegativeAudioDataset defaults: half of the clips get negative audio, half of those in every second, the others
#   in 1 to T-1 random seconds; silence, noise (-45 to -10 dBFS, white or pink) and off-screen sound in equal
#   parts; replaced frames get empty targets, the presence target 0 and stay out of BCL; in clips with one label
#   (S4, AVSS v1s training) only the unlabelled frames are replaced (spare_labelled). It draws from the
#   per-sample seeds of the train sampler (SeededSampler): anew each epoch, identically after a resume.
# * Weight averaging: validation, the saved checkpoints and the test use an exponential moving average of the
#   weights (mmengine's EMAHook with mmdet's ExpMomentumEMA; the checkpoint's `state_dict` holds the average,
#   `ema_state_dict` the raw weights for resuming). Iteration t updates the average with momentum
#   m_t = (1 - m) exp(-t / gamma) + m: it follows the weights closely at first (a short run is not scored on an
#   average that still holds its initial weights) and averages over about 1 / m iterations after a few gamma. Each
#   variable below sets m and gamma to about two epochs of a schedule at its batch size on one GPU (toy data: 0.01
#   and 100, two epochs of 96 clips; with more GPUs an epoch has fewer iterations). On toy S4 data it raised the
#   mIoU on every seed (88.4 +- 0.9 against 84.1 +- 3.4 over three; docs/robustness.md, "Weight averaging, and
#   what did not help").
robust_neck = dict(audio_window=0)
robust_ema = dict(type='EMAHook', ema_type='mmdet.ExpMomentumEMA', momentum=0.01, gamma=100, update_buffers=True)
robust_ema_s4 = dict(robust_ema, momentum=3e-4, gamma=3000)  # S4: 3452 training clips, 1726 iterations an epoch
robust_ema_ms3 = dict(robust_ema, momentum=3e-3, gamma=300)  # MS3: 296 training clips, 148 iterations an epoch
robust_ema_avss = dict(robust_ema, momentum=3.5e-4, gamma=3000)  # AVSS: about 8,500 clips, 1,400 iterations an epoch
# * A check of the presence gate: after each validation, the share of the first 64 validation clips' frames that get
#   a mask when they hear white noise at -20 dBFS goes to the log as val/noise_masked (a warning above 50%). A gate
#   that stays open whatever the model hears passes an ordinary validation, since the validation clips' own audio
#   sounds; it shows here (docs/robustness.md, "Checking the gate during training").
robust_gate_check = dict(type='NoiseGateCheckHook')
robust_semantic_head = dict(
    query_generator=dict(audio_context='frame'),
    seg_head=dict(audio_window=0),
    presence_head=dict(type='AudioVisualPresence', loss_weight=1.0),
)
robust_decode_head = dict(
    robust_semantic_head,
    loss_decode=[
        dict(
            type='mmdet.DiceLoss',
            use_sigmoid=True,
            activate=True,
            naive_dice=False,
            eps=1e-3,
            reduction='mean',
            loss_weight=1.0,
        ),
        dict(
            type='mmseg.CrossEntropyLoss', use_sigmoid=True, avg_non_ignore=True, loss_weight=1.0, loss_name='loss_bce'
        ),
    ],
)
# S4 (one labelled frame a clip): the presence head's match logit of every location is trained too, against the share
# of each cell that the labelled mask covers (and 0 on frames of negative audio), so the gate learns which visible
# object makes the sound, not only whether one does (CCFormerHead presence_head `map_loss_weight`). Measured on the
# toy S4 data (3 seeds each; docs/robustness.md, "Training the presence map"): frames masked under another clip's
# off-screen sound 3.3 against 17.7% (synthetic, 24 epochs) and 11.4 / 7.5 / 7.5 against 42.9 / 32.5 / 47.5% on the
# `make demo` job, about the same mIoU; costs: held-out real recordings masked 20.4 against 16.2% (synthetic, within
# the spread), and with oracle audio 3.9 against 0.2% of the silent frames (5 seeds; 11.2% on one). MS3 configs keep
# the frame-level loss (every frame labelled; no change beyond the spread on the recorded family). On one seed in ten
# of the oracle-audio family the map's BCE left the gate open on every input (noise too); presence_head
# map_loss_type='softmax' (where on the frame the sound is, relative; opt-in) did not on that seed but kept less of
# the off-screen gain on synthetic S4 (7.3 against 2.3%; docs/robustness.md, "A collapse on the oracle family").
robust_decode_head_s4 = dict(
    robust_decode_head, presence_head=dict(type='AudioVisualPresence', loss_weight=1.0, map_loss_weight=1.0)
)
# Category supervision (docs/robustness.md, "Which animal sounds: category supervision"), off by default: S4-style
# data name one category per clip (the CSV's `category`; AVSBench S4: 23), so the head can learn which category a
# sound is and where each category is seen, and lower the masks where another category than the one heard is seen.
# A robust S4 config that wants it writes
#   model = dict(neck=_base_.robust_neck,
#                decode_head=dict(_base_.robust_decode_head_s4, category_head=_base_.robust_category_s4))
# or, for a run, --cfg-options model.decode_head.category_head.type=CategoryBridge. On the toy recorded data (3 seeds)
# it made the model listen through the recordings it was trained on (true - shuffled audio 2.1 -> 6.3 mIoU) and a
# little through new ones (0.0 -> 3.1); on synthetic S4 it kept the mIoU within the spread but masked more silent
# seconds of the true audio. Off in every config until measured on AVSBench.
robust_category_s4 = dict(type='CategoryBridge', num_categories=23, loss_weight=1.0)
# Real recordings of things never on screen (docs/robustness.md, "Real recordings in training"): a config that
# wants them writes
#   train_dataloader = dict(dataset=dict(_base_.robust_real_audio, ...))
# next to the keys above. `sound_bank` is a folder with one sub-folder per kind of recording (for real AVSBench
# training: e.g. ESC-50 or AudioSet clips sorted by class, of classes that are never on screen; recordings of a kind
# visible in a clip are left out there); 'assets:recorded/bank' is the small bank shipped with the package (music,
# household, crowd, workshop, signals), enough for the toy data families. Off-screen real recordings then replace
# two of every five negative seconds, and every real second gets a random level, a bank recording mixed in under it
# at 6-24 dB below and SpecAugment masks (LogmelAugment), so a kind is heard through more than its own takes. The
# noise seconds are white, pink or ambient noise (a random colour, spectral shape, level contour and hum) at -60 to
# -10 dBFS, where they were white or pink at -45 to -10: on the recorded MS3 family this lowered the share of frames
# masked under real recordings of categories never heard in training from 39.0 to 30.0% (3 seeds, lower on each;
# docs/robustness.md, "Ambient noise among the negatives").
# Colouring of the training audio (LogmelAugment's eq_db / tilt_db, off by default): every real second is heard as
# through another microphone or room, a random smooth equaliser curve with a peak of up to 12 dB plus a tilt from -t
# dB at the lowest mel bin to +t at the highest, |t| <= 6, so a kind is not learned by the colour of its few
# recordings. Measured on the toy recorded S4 data with category supervision (5 seeds): the true - shuffled gap
# through recordings never heard 3.6 +- 2.3 against 1.6 +- 2.1 mIoU (higher on four seeds, within the spread), the
# heard category right on 46 against 41% of the frames; without category labels (MS3, S4) no change beyond the spread
# (docs/robustness.md, "Colouring the training audio"). A config takes it with
#   train_dataloader = dict(dataset=dict(_base_.robust_real_audio, audio_augment=_base_.robust_audio_colouring))
robust_audio_colouring = dict(eq_db=12.0, tilt_db=6.0)
robust_real_audio = dict(
    sound_bank='assets:recorded/bank',
    conditions=dict(silence=1.0, noise=1.0, offscreen=1.0, offscreen_recorded=2.0),
    noise_colors=['white', 'pink', 'ambient'],
    noise_dbfs=(-60.0, -10.0),
    audio_augment=dict(),
)
# S4 (one source, one label a clip) weights another clip's off-screen sound 2 as well: with weight 1 the bank leaves
# it a fifth of the negatives and on toy S4 (5 seeds) 16.1% of the frames were masked under another clip's sound
# against 5.4% with 2, the real recordings 1.2 and 1.5%. On recorded MS3 the weight 2 masked more frames under the
# held-out real recordings (docs/robustness.md, "Balancing the negatives when a bank is used"), so MS3 keeps 1.
robust_real_audio_s4 = dict(
    robust_real_audio, conditions=dict(silence=1.0, noise=1.0, offscreen=2.0, offscreen_recorded=2.0)
)
