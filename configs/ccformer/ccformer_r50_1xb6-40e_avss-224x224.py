# CCFormer, ResNet-50 backbone, AVSBench-semantic (AVSS), clips padded to 10 frames, 71 classes, per-pixel CE.
# Paper recipe (Sec. IV-B): AdamW lr 2e-5, batch 6 clips on one GPU, 40 epochs, 224 x 224 frames.
_base_ = [
    '../_base_/models/ccformer_r50.py', '../_base_/datasets/avss.py',
    '../_base_/schedules/schedule_40e.py', '../_base_/default_runtime.py'
]
model = dict(decode_head=dict(num_classes=71))
# Training augmentation (Sec. IV-B: horizontal flip, photometric distortion, random resize, crop), the same random
# parameters for every frame of a clip. [choice] the paper gives no ranges: mmseg's usual ratio 0.5-2.0 of 224,
# a 224 x 224 crop (padded back to 224 with seg 255 = ignored where the resized frame is smaller).
clip_augment = dict(
    type='ClipConsistentTransform',
    transforms=[
        dict(type='RandomResize', scale=(224, 224), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(224, 224)),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PhotoMetricDistortion'),
        dict(type='Pad', size=(224, 224), pad_val=dict(img=0, seg=255)),
    ])
train_pipeline = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='palette'),
    dict(type='AVSSResize', size=224, mode='short_side_crop'),
    dict(type='LoadAVSAudio', pad_mode='zeros'),
    clip_augment,
    dict(type='PackAVSInputs'),
]
train_dataloader = dict(batch_size=6, dataset=dict(pipeline=train_pipeline))
