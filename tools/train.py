# Copyright (c) OpenMMLab. All rights reserved.
"""Train a CCFormer model (mmsegmentation 1.x ``tools/train.py`` conventions).

Examples::

    python tools/train.py configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py
    python tools/train.py CONFIG --work-dir work_dirs/exp --resume
    bash tools/dist_train.sh CONFIG 8 --amp
    python tools/train.py CONFIG --amp --amp-dtype bfloat16
    python tools/train.py CONFIG --cfg-options compile=True    # torch.compile of the model's tensor core
    python tools/train.py CONFIG --data-root /data/AVSBench/Multi-sources   # every dataloader reads from there

``custom_imports=['projects.ccformer']`` in the configs finds the package installed by ``tools/setup_env.sh``
(``pip install -e .``), from any working directory and without ``PYTHONPATH``.
"""

import argparse
import contextlib
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner, find_latest_checkpoint

from projects.ccformer.engine import set_data_root
from projects.ccformer.engine.cpu_ddp import init_cpu_distributed
from projects.ccformer.engine.resume import remove_leftover_temp_files, resume_source
from projects.ccformer.engine.run_checks import check_cfg_options, check_fresh_work_dir
from projects.ccformer.engine.safe_checkpoint import trust_checkpoint
from projects.ccformer.engine.work_dir_lock import WorkDirLock


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line (mmseg 1.2.2 ``tools/train.py`` flags, plus ``--amp-dtype`` and ``--data-root``)."""
    parser = argparse.ArgumentParser(description='Train a CCFormer segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically '
        '(model, optimizer, scheduler and iteration are restored)',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='train into a work dir that holds an earlier run: delete its checkpoints (epoch_*/iter_*/best_*.pth, '
        'last_checkpoint) first. Without it such a work dir is refused (use --resume or a new --work-dir)',
    )
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='load the checkpoint this run starts from (load_from, or the one --resume picks) with full '
        'unpickling. Only for files from a trusted source: by default checkpoints are read weights-only and '
        'never execute code',
    )
    parser.add_argument('--amp', action='store_true', default=False, help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--amp-dtype',
        choices=['float16', 'bfloat16'],
        default=None,
        help='with --amp: float16 (default; AmpOptimWrapper with dynamic loss scale, as mmseg) or bfloat16 '
        '(BF16OptimWrapper: bf16 autocast, no loss scaler, so no GradScaler host synchronisation)',
    )
    parser.add_argument(
        '--data-root',
        help='dataset directory: sets data_root of every dataloader\'s dataset (wrapped datasets included)',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.',
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch>=2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.amp_dtype is not None and not args.amp:
        parser.error('--amp-dtype needs --amp')
    if args.amp_dtype is None:
        args.amp_dtype = 'float16'
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def setup_cfg(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line overrides (no file is touched: :func:`prepare_work_dir` does
    that, under the work dir's lock)."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(
            f'Config file {args.config!r} does not exist; pass a path such as '
            'configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py'
        )
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options, args.config)
        cfg.merge_from_dict(args.cfg_options)
    set_data_root(cfg, args.data_root)

    # work_dir priority: CLI > config > ./work_dirs/<config stem>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper in ('AmpOptimWrapper', 'BF16OptimWrapper'):
            print_log(
                'AMP training is already enabled in your config. '
                f'Keeping its {optim_wrapper} (--amp-dtype has no effect).',
                logger='current',
                level=logging.WARNING,
            )
        else:
            assert optim_wrapper == 'OptimWrapper', (
                f'`--amp` is only supported when the optimizer wrapper type is `OptimWrapper` but got {optim_wrapper}.'
            )
            if getattr(args, 'amp_dtype', None) == 'bfloat16':
                # bf16 needs no loss scale; BF16OptimWrapper runs without GradScaler (no GradScaler host sync)
                cfg.optim_wrapper.type = 'BF16OptimWrapper'
            else:
                cfg.optim_wrapper.type = 'AmpOptimWrapper'
                cfg.optim_wrapper.loss_scale = 'dynamic'

    move_compile_to_model(cfg)
    check_cuda_graph_accumulation(cfg)
    use_atomic_checkpoints(cfg)
    cfg.resume = args.resume
    return cfg


def prepare_work_dir(cfg: Config, args: argparse.Namespace) -> None:
    """Check the work dir and pick the checkpoint to start from (run it while holding the work dir's lock).

    A work dir with an earlier run's checkpoints is refused without ``--resume`` / ``--overwrite``
    (``--overwrite`` deletes them); temporary files of a save that a killed run left are removed; ``--resume``
    continues from the newest complete checkpoint (an incomplete or missing newest one is skipped and named).
    """
    check_fresh_work_dir(cfg.work_dir, args.resume, getattr(args, 'overwrite', False))
    remove_leftover_temp_files(cfg.work_dir)
    if args.resume and cfg.get('load_from') is None:
        source = resume_source(cfg.work_dir)
        if source is not None:
            cfg.load_from = source
    if getattr(args, 'trust_checkpoint', False):
        source = cfg.get('load_from') or (find_latest_checkpoint(cfg.work_dir) if args.resume else None)
        if source:
            trust_checkpoint(source)


def use_atomic_checkpoints(cfg: Config) -> None:
    """mmengine's ``CheckpointHook`` -> ``AtomicCheckpointHook`` (same arguments; complete files only, an old
    checkpoint removed after its successor is saved). The configs of this project name it already."""
    hook = cfg.get('default_hooks', {}).get('checkpoint')
    if hook is not None and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        hook['type'] = 'AtomicCheckpointHook'


def move_compile_to_model(cfg: Config) -> None:
    """mmengine's ``cfg.compile`` -> ``cfg.model.compile_cfg`` for models that have it (CCFormer).

    mmengine compiles the whole ``train_step``: the data preprocessor (padding with data-dependent sizes, deep
    copies of metainfo) breaks the graph and recompiles whenever a clip's metainfo changes. CCFormer compiles its
    tensor core instead (encoders, EIM, head), with the same ``torch.compile`` arguments.
    """
    compile_cfg = cfg.get('compile', None)
    if not compile_cfg or cfg.model.get('type') != 'CCFormer':
        return
    if isinstance(compile_cfg, dict):
        compile_cfg = {k: v for k, v in compile_cfg.items() if k != 'target'}  # mmengine's FlexibleRunner key
    cfg.model.compile_cfg = compile_cfg if isinstance(compile_cfg, dict) else True
    cfg.compile = False
    print_log(
        f'compile={compile_cfg}: compiling CCFormer\'s tensor core (model.compile_cfg) instead of mmengine\'s '
        'whole train_step (whose data preprocessing would break the graph and recompile per batch)',
        logger='current',
        level=logging.INFO,
    )


def check_cuda_graph_accumulation(cfg: Config) -> None:
    """Refuse CUDA-graph compile modes together with gradient accumulation.

    With CUDA graphs the backward's gradients live in the graph's memory pool; the next micro-batch's replay
    overwrites them before the optimizer step, so accumulated gradients would be silently wrong.
    """
    from projects.ccformer.models.segmentors.ccformer import CCFormer

    compile_cfg = cfg.model.get('compile_cfg')
    counts = cfg.get('optim_wrapper', {}).get('accumulative_counts', 1)
    if isinstance(compile_cfg, dict) and CCFormer.uses_cuda_graphs(compile_cfg) and counts > 1:
        raise ValueError(
            f'compile={dict(compile_cfg)} records CUDA graphs, which cannot accumulate gradients over '
            f'optim_wrapper.accumulative_counts={counts} micro-batches (each replay overwrites the gradients of the '
            'previous one). Use compile=True (inductor without CUDA graphs) or accumulative_counts=1.'
        )


def _is_main_rank() -> bool:
    """Rank 0 of a distributed launch (or a single process): the one that holds the work dir's lock."""
    return int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', 0))) == 0


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = setup_cfg(args)
    # one run per work dir: a second tools/train.py into it is refused, naming this one
    with WorkDirLock(cfg.work_dir) if _is_main_rank() else contextlib.nullcontext():
        prepare_work_dir(cfg, args)
        init_cpu_distributed(cfg)
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            from mmseg.registry import RUNNERS

            runner = RUNNERS.build(cfg)
        runner.train()


if __name__ == '__main__':
    main()
