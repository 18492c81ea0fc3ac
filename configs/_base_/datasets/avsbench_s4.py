# AVSBench-object Single-source (S4): 5 frames per clip at 224x224, only frame 1 labelled in train.
# Official loading: frames at their stored size (no resize), ImageNet normalisation in the data preprocessor; the
# train pipeline adds the paper's clip-consistent augmentation (avsbench_loaders.py).
_base_ = ['./avsbench_loaders.py']
dataset_type = 'AVSBenchS4Dataset'
data_root = 'data/AVSBench/Single-source'
audio_source = 'pkl'  # official log-mels; 'wav' computes them from s4_data/audio_wav

train_pipeline = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    _base_.clip_augment,
    dict(type='PackAVSInputs'),
]
# Also the pipeline of mmseg.apis.inference_model(model, path): LoadAVSFrames loads a video file or a clip folder given
# as img_path (5 frames, one a second, resized to 224 x 224; dataset clips keep their stored size).
test_pipeline = [
    dict(type='LoadAVSFrames', num_frames=5, input_size=(224, 224)),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    dict(type='PackAVSInputs'),
]
# flip test-time augmentation (tools/test.py --tta): each clip and its mirror image, logits averaged (AVSTTAModel)
tta_model = dict(type='AVSTTAModel')
tta_pipeline = test_pipeline[:-1] + [
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='ClipConsistentTransform', transforms=[dict(type='RandomFlip', prob=0.0)]),
                dict(type='ClipConsistentTransform', transforms=[dict(type='RandomFlip', prob=1.0)]),
            ],
            [dict(type='PackAVSInputs')],
        ],
    )
]

train_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, split='train', audio_source=audio_source, pipeline=train_pipeline
    )
)
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        audio_source=audio_source,
        test_mode=True,
        pipeline=test_pipeline,
    )
)
# the test loader is the val loader on the test split
test_dataloader = dict(dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = dict(type='AVSBenchMetric', legacy_videos_per_batch=4)
test_evaluator = val_evaluator
