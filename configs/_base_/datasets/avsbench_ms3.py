# AVSBench-object Multi-sources (MS3): 5 frames per clip at 224x224, all frames labelled.
# Same pipelines (official loading; the paper's augmentation in train), loaders and evaluators as S4; only the
# dataset class and its root differ.
_base_ = ['./avsbench_s4.py']
dataset_type = 'AVSBenchMS3Dataset'
data_root = 'data/AVSBench/Multi-sources'
audio_source = 'pkl'  # official log-mels; 'wav' computes them from ms3_data/audio_wav

_dataset = dict(type=dataset_type, data_root=data_root, audio_source=audio_source)
train_dataloader = dict(dataset=_dataset)
val_dataloader = dict(dataset=_dataset)
test_dataloader = dict(dataset=_dataset)
