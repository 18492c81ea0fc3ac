# ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py trained to segment only what sounds (configs/_base_/robust.py,
# docs/robustness.md).
_base_ = ['./ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py', '../_base_/robust.py']
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
custom_hooks = _base_.custom_hooks + [_base_.robust_ema_s4, _base_.robust_gate_check]
