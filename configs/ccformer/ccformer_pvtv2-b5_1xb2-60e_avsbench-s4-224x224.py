# CCFormer, PVT-v2-b5 backbone, AVSBench-object Single-source (S4), 5 frames; only frame 1 is labelled in train (gt_valid).
# Paper recipe (Sec. IV-B): AdamW lr 2e-5, batch 2 clips on one GPU, 60 epochs, 224 x 224 frames.
_base_ = [
    '../_base_/models/ccformer_pvtv2-b5.py', '../_base_/datasets/avsbench_s4.py',
    '../_base_/schedules/schedule_60e.py', '../_base_/default_runtime.py'
]
model = dict(decode_head=dict(num_classes=1))
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
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    clip_augment,
    dict(type='PackAVSInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
