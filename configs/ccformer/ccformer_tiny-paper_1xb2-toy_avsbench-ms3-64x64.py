# Tiny CCFormer on the toy MS3 data (projects/ccformer/datasets/toy.py) at 64 x 64: trains on CPU in minutes.
# Make the data (64 x 64 frames, as `make demo` does):
#   python tools/dataset_converters/generate_toy_avsbench.py data/toy/ms3 --layout ms3 --img-size 64
# Same model, pipelines and schedule as the tiny S4 config; only the dataset differs (all 5 frames labelled).
_base_ = ['./ccformer_tiny-paper_1xb2-toy_avsbench-s4-64x64.py']
data_root = 'data/toy/ms3'
_dataset = dict(type='AVSBenchMS3Dataset', data_root=data_root)
train_dataloader = dict(dataset=_dataset)
val_dataloader = dict(dataset=_dataset)
test_dataloader = dict(dataset=_dataset)
