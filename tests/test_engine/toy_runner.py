"""A toy mmengine Runner for the checkpoint tests: a 2 -> 1 linear model, 4 samples, a metric that improves every
epoch (so every epoch saves a new best), our checkpoint hook by default."""

import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import projects.ccformer  # noqa: F401


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(list(inputs)) if isinstance(inputs, (list, tuple)) else inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else [dict(y=v) for v in out]


class ToyData(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.full((2,), float(i)))


class Improving(BaseMetric):
    """acc = 1, 2, 3, ...: every validation is a new best."""

    calls = 0

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        Improving.calls += 1
        return dict(acc=float(Improving.calls))


def toy_runner(work_dir, epochs, hook='AtomicCheckpointHook', max_keep_ckpts=1, resume=False):
    loader = dict(
        dataset=ToyData(),
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=2,
        collate_fn=dict(type='default_collate'),
    )
    return Runner(
        model=ToyModel(),
        work_dir=work_dir,
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=Evaluator([Improving()]),
        train_cfg=dict(by_epoch=True, max_epochs=epochs, val_interval=1),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(type=hook, interval=1, max_keep_ckpts=max_keep_ckpts, save_best='acc', rule='greater'),
            logger=dict(type='LoggerHook', interval=100),
        ),
        default_scope='mmseg',
        resume=resume,
        log_level='WARNING',
    )
