# CCFormer, PVT-v2-b5 backbone, AVSBench-object Multi-sources (MS3), 5 frames.
# Paper recipe (Sec. IV-B): AdamW lr 2e-5, batch 2 clips on one GPU, 120 epochs, 224 x 224 frames.
_base_ = [
    '../_base_/models/ccformer_pvtv2-b5.py', '../_base_/datasets/avsbench_ms3.py',
    '../_base_/datasets/clip_augment_224.py', '../_base_/schedules/schedule_120e.py', '../_base_/default_runtime.py'
]
model = dict(decode_head=dict(num_classes=1))
train_pipeline = [
    dict(type='LoadAVSFrames'),
    dict(type='LoadAVSMasks', label_type='binary'),
    dict(type='LoadAVSAudio', pad_mode='repeat'),
    {{_base_.clip_augment}},  # paper augmentation, same for all frames of a clip
    dict(type='PackAVSInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
