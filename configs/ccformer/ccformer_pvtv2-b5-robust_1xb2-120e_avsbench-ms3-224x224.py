# ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py trained to segment only what sounds (configs/_base_/robust.py,
# docs/robustness.md).
_base_ = ['./ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py', '../_base_/robust.py']
model = dict(neck=_base_.robust_neck, decode_head=_base_.robust_decode_head, empty_when_silent=True)
train_dataloader = dict(
    dataset=dict(_delete_=True, type='NegativeAudioDataset', dataset=_base_.train_dataloader.dataset)
)
custom_hooks = _base_.custom_hooks + [_base_.robust_ema_ms3, _base_.robust_gate_check]
