"""Every config under ``configs/`` resolves to the reference in ``tests/test_configs/configs_resolved.json``.

The reference was written from the configs before they were restructured (the augmented train pipeline defined
once in the dataset bases, no ``{{_base_.x}}`` text snippets, the toy schedule in one base). A resolved config may
differ from it only by the changes :func:`expected_changes` lists; anything else (a lost key, a changed value, a list
turned into a tuple) fails. Configs added since are compared with the reference config they were split from
(``NEW_CONFIGS``).
"""

import json

import pytest
from resolved_configs import REFERENCE, config_files, resolve

with open(REFERENCE) as fh:
    REFERENCE_CONFIGS = json.load(fh)

MISSING = '<missing>'
PAPER_AUGMENT = REFERENCE_CONFIGS['configs/ccformer_pvt_s4.py']['clip_augment']
# config added since the reference -> the reference config it is compared with
NEW_CONFIGS = {
    # AVSS with BCL: what the AVSS configs trained before they followed the paper
    'configs/ccformer/ablations/ccformer_pvtv2-b5-bcl_1xb6-40e_avss-224x224.py': (
        'configs/ccformer/ccformer_pvtv2-b5_1xb6-40e_avss-224x224.py'
    ),
    # the query generator on the whole clip's audio / BCL in one direction: what the paper configs did before they
    # followed the authors' code (docs/design.md, "Fidelity")
    **{
        f'configs/ccformer/ablations/ccformer_pvtv2-b5-{kind}_{task}-224x224.py': (
            f'configs/ccformer/ccformer_pvtv2-b5_{task}-224x224.py'
        )
        for kind in ('gen-clip-audio', 'bcl-one-way')
        for task in ('1xb2-60e_avsbench-s4', '1xb2-120e_avsbench-ms3')
    },
    'configs/ccformer/ablations/ccformer_pvtv2-b5-gen-clip-audio_1xb6-40e_avss-224x224.py': (
        'configs/ccformer/ccformer_pvtv2-b5_1xb6-40e_avss-224x224.py'
    ),
    # ResNet-50 from an mmdet COCO detector (the paper's pretraining) instead of torchvision's ImageNet weights
    **{
        f'configs/ccformer/ccformer_r50-coco_{task}-224x224.py': f'configs/ccformer/ccformer_r50_{task}-224x224.py'
        for task in ('1xb2-60e_avsbench-s4', '1xb2-120e_avsbench-ms3', '1xb6-40e_avss')
    },
}
# real recordings as negative audio and audio augmentation (configs/_base_/robust.py, docs/robustness.md)
NEW_CONFIGS.update(
    {
        f'configs/ccformer/ccformer_tiny-robust-bank_1xb2-toy_avsbench-{task}-64x64.py': (
            f'configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-{task}-64x64.py'
        )
        for task in ('s4', 'ms3')
    }
)
COCO_R50 = 'pretrained/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth'
RUNTIME_HOOKS = [dict(type='NonFiniteCheckHook'), dict(type='IterSeedHook')]
ROBUST_EMA = dict(type='EMAHook', ema_type='mmdet.ExpMomentumEMA', momentum=0.01, gamma=100, update_buffers=True)
ROBUST_GATE_CHECK = dict(type='NoiseGateCheckHook')
ROBUST_EMA_VARIABLES = {
    'robust_ema_s4': dict(ROBUST_EMA, momentum=3e-4, gamma=3000),
    'robust_ema_ms3': dict(ROBUST_EMA, momentum=3e-3, gamma=300),
    'robust_ema_avss': dict(ROBUST_EMA, momentum=3.5e-4, gamma=3000),
}


def ema_of(name: str) -> dict:
    """EMA momentum and gamma of robust config ``name``: about two epochs of its schedule."""
    if '_tiny' in name:
        return dict(momentum=0.01, gamma=100)
    if 'avss' in name:
        return dict(momentum=3.5e-4, gamma=3000)
    return dict(momentum=3e-3, gamma=300) if 'ms3' in name else dict(momentum=3e-4, gamma=3000)


ROBUST_DECODE_HEAD_S4 = dict(
    query_generator=dict(audio_context='frame'),
    seg_head=dict(audio_window=0),
    presence_head=dict(type='AudioVisualPresence', loss_weight=1.0, map_loss_weight=1.0),
    loss_decode=REFERENCE_CONFIGS['configs/ccformer_r50_s4_robust.py']['robust_decode_head']['loss_decode'],
)
ROBUST_CATEGORY_S4 = dict(type='CategoryBridge', num_categories=23, loss_weight=1.0)
ROBUST_REAL_AUDIO = dict(
    sound_bank='assets:recorded/bank',
    conditions=dict(silence=1.0, noise=1.0, offscreen=1.0, offscreen_recorded=2.0),
    noise_colors=['white', 'pink', 'ambient'],
    noise_dbfs={'__tuple__': [-60.0, -10.0]},
    audio_augment=dict(),
)
ROBUST_REAL_AUDIO_S4 = dict(
    ROBUST_REAL_AUDIO, conditions=dict(silence=1.0, noise=1.0, offscreen=2.0, offscreen_recorded=2.0)
)


def flat_diff(old, new, prefix=''):
    """``{dotted key: (old value, new value)}`` for every leaf where ``old`` and ``new`` differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = {}
        for key in sorted(set(old) | set(new)):
            path = f'{prefix}.{key}' if prefix else key
            out.update(flat_diff(old.get(key, MISSING), new.get(key, MISSING), path))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = {}
        for i, (a, b) in enumerate(zip(old, new)):
            out.update(flat_diff(a, b, f'{prefix}[{i}]'))
        return out
    return {} if old == new else {prefix: (old, new)}


def expected_changes(name: str) -> dict:
    """The intended differences of config ``name`` from the reference: ``{dotted key: (old, new)}``.

    * every config: ``model.test_cfg=dict(mode='whole')`` is gone (nothing reads it);
    * AVSS (not the BCL ablation): trained with the per-pixel cross-entropy alone as in the paper (Sec. IV-B), so
      ``model.use_bcl`` is False; the AVSS dataset base defines ``num_classes = 71`` (the configs read it);
    * ``*r50-coco*`` (new): the backbone loads the ``backbone.`` weights of an mmdet COCO checkpoint;
    * tiny configs: they inherit the ``clip_augment`` variable from the dataset bases, which now hold the paper's
      augmentation (their own train pipelines, with random flips only, are unchanged);
    * robust S4 configs: the S4 train set gives its unlabelled, non-silent frames the presence target 1
      (``sounding_unlabelled``, docs/robustness.md);
    * every config follows the authors' later code (docs/design.md, "Fidelity"): BCL sums both directions
      (``model.bcl_loss.directions='both'``; ``*-bcl-one-way*``: the one direction of before, now written out) and
      the query generator reads each frame's own audio (``audio_context='frame'``; the robust and tiny configs
      set it before already; ``*-gen-clip-audio*``: the whole clip's audio of before, now written out).
    * every config: ``default_hooks.checkpoint`` is ``AtomicCheckpointHook`` (mmengine's ``CheckpointHook`` that
      writes complete files only and removes an old checkpoint after its successor is saved; same arguments);
    * tiny S4 / MS3 configs: ``crop_size = (64, 64)``, the frame size the tools (video demo, ONNX export, FLOPs)
      read from the config; nothing in training or testing reads it.
    * every config: ``LoadAVSFrames`` of the test pipeline (also the val / test loaders') takes ``num_frames`` and,
      where no ``AVSSResize`` follows, ``input_size``: what ``mmseg.apis.inference_model`` needs to load a clip given as
      ``img_path`` (a video file or a clip folder; dataset clips load as before); ``tta_model`` / ``tta_pipeline``
      (flip test-time augmentation for ``tools/test.py --tta``) are new.
    * robust configs: the variable ``robust_real_audio`` of ``configs/_base_/robust.py`` is new; the
      ``*-robust-bank*`` configs (new) set it on their ``NegativeAudioDataset``.
    * robust configs: validation, checkpoints and tests use an exponential moving average of the weights
      (``robust_ema``, mmengine's ``EMAHook`` after the runtime's hooks; momentum and gamma about two epochs of the
      schedule: ``robust_ema_s4`` / ``_ms3`` / ``_avss`` for the AVSBench configs).
    * robust configs: the variable ``robust_category_s4`` (category supervision, off in every config) is new.
    * robust configs: the variable ``robust_audio_colouring`` (colouring of the training audio, off in every config)
      is new.
    * robust configs: the variable ``robust_decode_head_s4`` is new; the robust S4 configs take it, so their presence
      head also trains its match map location by location (``map_loss_weight=1.0``).
    * robust configs: frames whose audio is digital silence get empty masks at inference
      (``model.empty_when_silent=True``).
    * robust configs: after each validation ``NoiseGateCheckHook`` logs how many validation frames get a mask under
      white noise (``robust_gate_check``, after the moving average in ``custom_hooks``).
    * robust configs: the variable ``robust_real_audio_s4`` is new (another clip's off-screen sound weighted like the
      bank recordings); the S4 ``*-robust-bank*`` config takes it.
    """
    changes = {
        'model.test_cfg': ({'mode': 'whole'}, MISSING),
        'default_hooks.checkpoint.type': ('CheckpointHook', 'AtomicCheckpointHook'),
    }
    if '_tiny' in name and 'avss' not in name:
        changes['crop_size'] = (MISSING, {'__tuple__': [64, 64]})
    if 'avss' in name:
        changes['num_classes'] = (MISSING, 71)
        if '-bcl_' not in name:
            changes['model.use_bcl'] = (True, False)
    if '_tiny' in name:
        changes['clip_augment'] = (MISSING, PAPER_AUGMENT)
    if 's4' in name and 'robust' in name:
        changes['train_dataloader.dataset.dataset.sounding_unlabelled'] = (MISSING, True)
        changes['model.decode_head.presence_head.map_loss_weight'] = (MISSING, 1.0)
    if '-bcl-one-way_' in name:
        changes['model.bcl_loss.directions'] = (MISSING, 'query_to_key')
    else:
        changes['model.bcl_loss.directions'] = (MISSING, 'both')
    if '-gen-clip-audio_' in name:
        changes['model.decode_head.query_generator.audio_context'] = (MISSING, 'clip')
    elif 'robust' not in name:
        changes['model.decode_head.query_generator.audio_context'] = (MISSING, 'frame')
    if 'robust' in name:
        changes['robust_real_audio'] = (MISSING, ROBUST_REAL_AUDIO)
        changes['robust_category_s4'] = (MISSING, ROBUST_CATEGORY_S4)
        changes['robust_audio_colouring'] = (MISSING, dict(eq_db=12.0, tilt_db=6.0))
        changes['robust_decode_head_s4'] = (MISSING, ROBUST_DECODE_HEAD_S4)
        changes['model.empty_when_silent'] = (MISSING, True)
        changes['robust_ema'] = (MISSING, ROBUST_EMA)
        changes.update({k: (MISSING, v) for k, v in ROBUST_EMA_VARIABLES.items()})
        changes['robust_gate_check'] = (MISSING, ROBUST_GATE_CHECK)
        changes['robust_real_audio_s4'] = (MISSING, ROBUST_REAL_AUDIO_S4)
        changes['custom_hooks'] = (
            RUNTIME_HOOKS,
            RUNTIME_HOOKS + [dict(ROBUST_EMA, **ema_of(name)), ROBUST_GATE_CHECK],
        )
    if '-robust-bank_' in name:
        bank = ROBUST_REAL_AUDIO_S4 if 's4' in name else ROBUST_REAL_AUDIO
        changes.update({f'train_dataloader.dataset.{k}': (MISSING, v) for k, v in bank.items()})
    if 'r50-coco' in name:
        changes['model.backbone.init_cfg.checkpoint'] = ('pretrained/resnet50-0676ba61.pth', COCO_R50)
        changes['model.backbone.init_cfg.prefix'] = (MISSING, 'backbone.')
    loader = dict(num_frames=10 if 'avss' in name else 5)
    if 'avss' not in name:
        loader['input_size'] = {'__tuple__': [64, 64] if '_tiny' in name else [224, 224]}
    for key in ('test_pipeline[0]', 'val_dataloader.dataset.pipeline[0]', 'test_dataloader.dataset.pipeline[0]'):
        changes.update({f'{key}.{k}': (MISSING, v) for k, v in loader.items()})
    test_pipeline = REFERENCE_CONFIGS[NEW_CONFIGS.get(name, name)]['test_pipeline']
    views = [dict(type='ClipConsistentTransform', transforms=[dict(type='RandomFlip', prob=p)]) for p in (0.0, 1.0)]
    flip_tta = dict(type='TestTimeAug', transforms=[views, [dict(type='PackAVSInputs')]])
    changes['tta_model'] = (MISSING, dict(type='AVSTTAModel'))
    changes['tta_pipeline'] = (MISSING, [dict(test_pipeline[0], **loader)] + test_pipeline[1:-1] + [flip_tta])
    return changes


def test_reference_lists_every_config():
    assert sorted(REFERENCE_CONFIGS) == sorted(set(config_files()) - set(NEW_CONFIGS))


@pytest.mark.parametrize('name', config_files())
def test_resolved_config_matches_reference(name):
    reference = REFERENCE_CONFIGS[NEW_CONFIGS.get(name, name)]
    assert flat_diff(reference, resolve(name)) == expected_changes(name)


def test_avss_follows_the_paper_and_bcl_stays_an_ablation():
    """The AVSS configs train without BCL (paper, Sec. IV-B); the ablation adds it back; S4 / MS3 keep it."""
    avss = [name for name in config_files() if 'avss' in name]
    assert len(avss) == 13  # 12 + the query generator's clip-audio ablation
    for name in avss:
        assert resolve(name)['model']['use_bcl'] is ('-bcl_' in name), name
    assert resolve('configs/ccformer_pvt_s4.py')['model']['use_bcl'] is True


def test_flat_diff_names_changed_leaves():
    old = {'model': {'a': 1, 'b': [1, {'c': 2}], 'd': {'__tuple__': [1, 2]}}}
    new = {'model': {'b': [1, {'c': 3}], 'd': [1, 2], 'e': 0}}
    assert flat_diff(old, new) == {
        'model.a': (1, MISSING),
        'model.b[1].c': (2, 3),
        'model.d': ({'__tuple__': [1, 2]}, [1, 2]),
        'model.e': (MISSING, 0),
    }
