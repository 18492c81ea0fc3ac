# The tiny robust S4 config with real recordings and ambient noise as negative audio, and audio augmentation
# (configs/_base_/robust.py `robust_real_audio_s4`, docs/robustness.md "Real recordings in training").
_base_ = ['./ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py']
train_dataloader = dict(dataset=_base_.robust_real_audio_s4)
