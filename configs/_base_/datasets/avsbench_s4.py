# AVSBench-object Single-source (S4): 5 frames per clip at 224x224, only frame 1 labelled in train.
# Official preprocessing: no resize, no augmentation, ImageNet normalisation (in the data
# preprocessor). To augment, insert e.g.
#   dict(type='ClipConsistentTransform', transforms=[dict(type='RandomFlip', prob=0.5),
#                                                    dict(type='PhotoMetricDistortion')])
# after the loaders: it draws one set of random parameters per clip.
dataset_type = 'AVSBenchS4Dataset'
data_root = 'data/AVSBench/Single-source'
audio_source = 'pkl'  # official log-mels; 'wav' computes them from s4_data/audio_wav

train_pipeline = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    dict(type='PackAVSInputs'),
]
test_pipeline = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    dict(type='PackAVSInputs'),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='SeededSampler', shuffle=True),  # augmentation seeded by (seed, epoch, index)
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        audio_source=audio_source,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        audio_source=audio_source,
        test_mode=True,
        pipeline=test_pipeline))
# the test loader is the val loader on the test split
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = dict(type='AVSBenchMetric', legacy_videos_per_batch=4)
test_evaluator = dict(type='AVSBenchMetric', legacy_videos_per_batch=4)
