# 40 epochs (CCFormer avss), AdamW lr 2e-5 with weight decay 0.01 (PyTorch AdamW default, as AVSegFormer), constant
# learning rate (no schedule, as AVSegFormer), validation every epoch. fp32 by default (the
# paper's recipe); bf16 autocast: python tools/train.py CFG --amp --amp-dtype bfloat16 (or --cfg-options
# optim_wrapper.type=BF16OptimWrapper; no loss scaler, no GradScaler host sync); plain --amp gives fp16 with dynamic
# loss scaling (AmpOptimWrapper).
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-5, betas=(0.9, 0.999), weight_decay=0.01), clip_grad=None
)
param_scheduler = []
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=40, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=2)
