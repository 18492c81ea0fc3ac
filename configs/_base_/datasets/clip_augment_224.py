# Training augmentation of the paper (Sec. IV-B: horizontal flip, photometric distortion, random resize, crop), with
# the same random parameters for every frame of a clip. [choice] the paper gives no ranges: mmseg's usual ratio
# 0.5-2.0 of 224, a 224 x 224 crop (padded back to 224 with seg 255 = ignored where the resized frame is smaller).
# Used by the full configs as `{{_base_.clip_augment}}` between the loaders and PackAVSInputs.
clip_augment = dict(
    type='ClipConsistentTransform',
    transforms=[
        dict(type='RandomResize', scale=(224, 224), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(224, 224)),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PhotoMetricDistortion'),
        dict(type='Pad', size=(224, 224), pad_val=dict(img=0, seg=255)),
    ])
