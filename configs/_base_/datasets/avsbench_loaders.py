# Loader settings shared by the AVSBench dataset configs (avsbench_s4.py, avsbench_ms3.py, avss.py) and the
# training augmentation of the paper (Sec. IV-B: horizontal flip, photometric distortion, random resize, crop) that
# their train pipelines insert between the loaders and PackAVSInputs, with the same random parameters for every
# frame of a clip. [choice] the paper gives no ranges: mmseg's usual ratio 0.5-2.0 of 224, a 224 x 224 crop (padded
# back to 224 with seg 255 = ignored where the resized frame is smaller).
clip_augment = dict(
    type='ClipConsistentTransform',
    transforms=[
        dict(type='RandomResize', scale=(224, 224), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(224, 224)),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PhotoMetricDistortion'),
        dict(type='Pad', size=(224, 224), pad_val=dict(img=0, seg=255)),
    ],
)
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True, sampler=dict(type='SeededSampler', shuffle=True)
)  # augmentation seeded by (seed, epoch, index)
val_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=False)
)
test_dataloader = val_dataloader
