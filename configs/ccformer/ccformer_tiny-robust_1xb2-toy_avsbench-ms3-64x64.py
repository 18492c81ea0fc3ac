# The tiny CCFormer of ccformer_tiny-paper_1xb2-toy_avsbench-ms3-64x64.py (the paper's recipe) trained to segment only
# what sounds (configs/_base_/robust.py, docs/robustness.md): the tiny configs of the demo and the tests.
_base_ = ['./ccformer_tiny-paper_1xb2-toy_avsbench-ms3-64x64.py', '../_base_/robust.py']
model = dict(neck=_base_.robust_neck, decode_head=_base_.robust_decode_head, empty_when_silent=True)
train_dataloader = dict(
    dataset=dict(_delete_=True, type='NegativeAudioDataset', dataset=_base_.train_dataloader.dataset)
)
custom_hooks = _base_.custom_hooks + [_base_.robust_ema, _base_.robust_gate_check]
