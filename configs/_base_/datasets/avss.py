# AVSBench-semantic (AVSS): 71 classes, clips padded to 10 frames (v1s/v1m: 5 real + 5 padded,
# v2: 10 real), audio computed from audio.wav and zero-padded, labels from labels_rgb colours.
# Official geometry: train = short side 224 + centre crop, val/test = resize to 224x224; the train pipeline adds
# the paper's clip-consistent augmentation (avsbench_loaders.py).
_base_ = ['./avsbench_loaders.py']
dataset_type = 'AVSSDataset'
data_root = 'data/AVSBench/AVSS'
subsets = ('v1s', 'v1m', 'v2')
num_classes = 71  # the configs set model.decode_head.num_classes from it

train_pipeline = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='palette'),
    dict(type='AVSSResize', size=224, mode='short_side_crop'),
    dict(type='LoadAVSAudio', pad_mode='zeros'),
    _base_.clip_augment,
    dict(type='PackAVSInputs'),
]
# Also the pipeline of mmseg.apis.inference_model(model, path): LoadAVSFrames loads a video file or a clip folder given
# as img_path (10 frames, one a second); AVSSResize brings it to 224 x 224.
test_pipeline = [
    dict(type='LoadAVSFrames', num_frames=10),
    dict(type='LoadAVSMasks', label_type='palette'),
    dict(type='AVSSResize', size=224, mode='resize'),
    dict(type='LoadAVSAudio', pad_mode='zeros'),
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
    dataset=dict(type=dataset_type, data_root=data_root, split='train', subsets=subsets, pipeline=train_pipeline)
)
val_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, split='val', subsets=subsets, test_mode=True, pipeline=test_pipeline
    )
)
# the test loader is the val loader on the test split
test_dataloader = dict(dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = dict(type='AVSSMetric')
test_evaluator = val_evaluator
