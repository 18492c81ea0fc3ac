# Tiny CCFormer on the toy AVSS data (projects/ccformer/datasets/toy.py) at 64 x 64: trains on CPU in minutes.
# Make the data (64 x 64 frames, as `make demo` does):
#   python tools/dataset_converters/generate_toy_avsbench.py data/toy/avss --layout avss --img-size 64
# AVSS geometry as the official code, at 64: train short side 64 + centre crop, val/test resize to 64 x 64; random
# flips only. Per-pixel cross-entropy alone, as the paper trains AVSS (no BCL).
# No pretrained weights (_base_/schedules/schedule_toy.py: lr 1e-3, 20 epochs).
_base_ = ['../_base_/models/ccformer_tiny.py', '../_base_/datasets/avss.py', '../_base_/schedules/schedule_toy.py']
data_root = 'data/toy/avss'
model = dict(decode_head=dict(num_classes=_base_.num_classes), use_bcl=False)
train_pipeline = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='palette'),
    dict(type='AVSSResize', size=64, mode='short_side_crop'),
    dict(type='LoadAVSAudio', pad_mode='zeros'),
    dict(type='ClipConsistentTransform', transforms=[dict(type='RandomFlip', prob=0.5, direction='horizontal')]),
    dict(type='PackAVSInputs'),
]
test_pipeline = [
    dict(type='LoadAVSFrames', num_frames=10),
    dict(type='LoadAVSMasks', label_type='palette'),
    dict(type='AVSSResize', size=64, mode='resize'),
    dict(type='LoadAVSAudio', pad_mode='zeros'),
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
