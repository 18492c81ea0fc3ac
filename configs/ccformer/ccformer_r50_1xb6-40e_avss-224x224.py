# CCFormer, ResNet-50 backbone, AVSBench-semantic (AVSS), clips padded to 10 frames, 71 classes, per-pixel CE.
# Paper recipe (Sec. IV-B): AdamW lr 2e-5, batch 6 clips on one GPU, 40 epochs, 224 x 224 frames.
_base_ = [
    '../_base_/models/ccformer_r50.py', '../_base_/datasets/avss.py',
    '../_base_/datasets/clip_augment_224.py', '../_base_/schedules/schedule_40e.py', '../_base_/default_runtime.py'
]
model = dict(decode_head=dict(num_classes=71))
train_pipeline = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='palette'),
    dict(type='AVSSResize', size=224, mode='short_side_crop'),
    dict(type='LoadAVSAudio', pad_mode='zeros'),
    {{_base_.clip_augment}},  # paper augmentation, same for all frames of a clip
    dict(type='PackAVSInputs'),
]
train_dataloader = dict(batch_size=6, dataset=dict(pipeline=train_pipeline))
