# The tiny CCFormer of ccformer_tiny-paper_1xb2-toy_avsbench-s4-64x64.py (the paper's recipe) trained to segment only
# what sounds (configs/_base_/robust.py, docs/robustness.md): the tiny configs of the demo and the tests.
_base_ = ['./ccformer_tiny-paper_1xb2-toy_avsbench-s4-64x64.py', '../_base_/robust.py']
model = dict(neck=_base_.robust_neck, decode_head=_base_.robust_decode_head_s4, empty_when_silent=True)
# S4: one source sounds all clip long, so unlabelled frames that are not silent are presence positives
# (AVSBenchS4Dataset.sounding_unlabelled, docs/robustness.md)
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='NegativeAudioDataset',
        dataset=dict(_base_.train_dataloader.dataset, sounding_unlabelled=True),
    )
)
custom_hooks = _base_.custom_hooks + [_base_.robust_ema, _base_.robust_gate_check]
