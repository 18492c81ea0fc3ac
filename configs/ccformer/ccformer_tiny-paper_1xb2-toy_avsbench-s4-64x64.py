# Tiny CCFormer on the toy S4 data (projects/ccformer/datasets/toy.py) at 64 x 64: trains on CPU in minutes.
# Make the data (64 x 64 frames, as `make demo` does):
#   python tools/dataset_converters/generate_toy_avsbench.py data/toy/s4 --layout s4 --img-size 64
# Frames are used at their stored size (toy data of another size also works, only slower); random flips only.
# No pretrained weights (_base_/schedules/schedule_toy.py: lr 1e-3, 20 epochs).
_base_ = [
    '../_base_/models/ccformer_tiny.py',
    '../_base_/datasets/avsbench_s4.py',
    '../_base_/schedules/schedule_toy.py',
]
data_root = 'data/toy/s4'
# the frame size the model is trained and run at (mmseg's crop_size; the test pipeline keeps the stored size): read
# by the video demo, segment_video, pytorch2onnx.py and get_flops.py (projects/ccformer/utils/config.py)
crop_size = (64, 64)
train_pipeline = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    dict(type='ClipConsistentTransform', transforms=[dict(type='RandomFlip', prob=0.5, direction='horizontal')]),
    dict(type='PackAVSInputs'),
]
test_pipeline = [
    dict(type='LoadAVSFrames', num_frames=5, input_size=(64, 64)),  # a video / clip folder (img_path): 64 x 64
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='PackAVSInputs'),
]
tta_pipeline = test_pipeline[:-1] + _base_.tta_pipeline[-1:]  # flip TTA (tools/test.py --tta)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,  # one process (CPU tests, the demo)
    dataset=dict(data_root=data_root, pipeline=train_pipeline),
)
val_dataloader = dict(train_dataloader, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
