# CCFormer, ResNet-50 backbone pretrained on COCO as in the paper (_base_/models/ccformer_r50-coco.py),
# AVSBench-semantic (AVSS), clips padded to 10 frames, 71 classes.
# Paper recipe (Sec. IV-B): AdamW lr 2e-5, batch 6 clips on one GPU, 40 epochs, 224 x 224 frames,
# clip-consistent augmentation (_base_/datasets/avsbench_loaders.py), per-pixel cross-entropy alone (no BCL; BCL on
# AVSS is the ablation ablations/ccformer_pvtv2-b5-bcl_1xb6-40e_avss-224x224.py).
_base_ = [
    '../_base_/models/ccformer_r50-coco.py',
    '../_base_/datasets/avss.py',
    '../_base_/schedules/schedule_40e.py',
    '../_base_/default_runtime.py',
]
model = dict(decode_head=dict(num_classes=_base_.num_classes), use_bcl=False)
train_dataloader = dict(batch_size=6)
