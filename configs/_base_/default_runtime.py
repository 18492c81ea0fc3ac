# Runtime shared by every CCFormer config (mmseg 1.x conventions, epoch-based).
default_scope = 'mmseg'
custom_imports = dict(imports=['projects.ccformer'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict(backend='nccl')
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=123)  # the AVSBench / AVSegFormer seed
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # keep the last checkpoint and the best one by validation mIoU (AVSBench selects on val mIoU); mmengine's
    # CheckpointHook that writes complete files only and removes an old checkpoint after its successor is saved
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=2, save_best='mIoU', rule='greater'
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='AVSVisualizationHook'),
)  # clip-aware; draws only with --show / --show-dir
# stop at the first non-finite loss (naming the clips) and never save a non-finite model; seed the model's random
# layers from (seed, iteration) so a resumed run is bit-exact (the train sampler seeds augmentation the same way)
custom_hooks = [dict(type='NonFiniteCheckHook'), dict(type='IterSeedHook')]
