# Schedule and runtime of the tiny configs on toy data (CPU, minutes): the paper's optimiser with lr 1e-3 instead
# of 2e-5 (from scratch, few iterations), 20 epochs, validation, checkpoints and log lines every 5. It includes
# default_runtime.py because it sets the intervals of the runtime's hooks (a sibling base may not set the same key).
_base_ = ['./schedule_60e.py', '../default_runtime.py']
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_epochs=20, val_interval=5)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5))
