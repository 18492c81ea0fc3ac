# CCFormer, PVT-v2-b5 backbone, AVSBench-object Single-source (S4), 5 frames; only frame 1 is
# labelled in train (gt_valid).
# Paper recipe (Sec. IV-B): AdamW lr 2e-5, batch 2 clips on one GPU, 60 epochs, 224 x 224 frames,
# clip-consistent augmentation (_base_/datasets/avsbench_loaders.py).
_base_ = [
    '../_base_/models/ccformer_pvtv2-b5.py',
    '../_base_/datasets/avsbench_s4.py',
    '../_base_/schedules/schedule_60e.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(batch_size=2)
