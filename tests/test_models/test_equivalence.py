"""The model computes what the reference code computed (``tests/fixtures/equivalence``, made by ``make_reference.py``
from the code at commit c362b05).

Each model is rebuilt with the current code, its parameters are filled from their names in the reference layout
(:func:`projects.ccformer.models.utils.to_reference_name`) and it runs the same seeded float64 clips:

* final logits (``mode='tensor'``, eval, a padded frame where the case has one), the head's logits of every decoder
  stage, every loss term (``mode='loss'``, train mode, dropout off) and every parameter's gradient agree within
  ``TOL`` = 1e-6 (relative, and absolute relative to the tensor's scale; the BCL heads' gradients, computed in
  float32 by the loss, within ``TOL_FLOAT32``). They are not compared exactly because the blocks run on library
  layers (mmcv ``MultiheadAttention`` / ``FFN``, mmdet DETR / Mask2Former layers) that order the floating-point
  operations of the attention differently from the reference's own attention; in
  float64 that moves results by ~1e-15 (measured: at most 4.3e-15 relative on ``tiny_avss``), far inside 1e-6, so
  any real change of behaviour fails;
* the set of parameters (by reference name), which of them get no gradient, and the parameter counts and FLOPs
  (per top-level module) are compared exactly: by default for ``COUNTED`` (each config costs ~20 s), with
  ``CCFORMER_EQUIVALENCE_ALL=1`` for every config in ``configs/ccformer`` and ``configs/ccformer/ablations``.

Intended differences since the references (each compared with the options that restore the reference's behaviour,
``make_reference.MODELS`` / ``count_cfg``): the configs follow the authors' later code (``docs/design.md``,
"Fidelity"): the query generator reads each frame's own audio (``audio_context='frame'``; same parameters, fewer
attention FLOPs: :func:`test_fidelity_defaults_keep_the_parameter_count`) and BCL sums both directions
(``directions='both'``; no parameters, a different ``loss_bcl``); the earlier behaviour stays as the ablations
``*-gen-clip-audio_*`` and ``*-bcl-one-way_*``.
"""

import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from _tools import load_tool

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DATA = osp.join(ROOT, 'tests', 'fixtures', 'equivalence')
TOL = 1e-6
#: values below this are float64 rounding noise around an analytic zero (e.g. the gradient of a projection's bias
#: that a GroupNorm removes: ~1e-18) and are compared absolutely at TOL * FLOOR
FLOOR = 1e-9
#: BCL computes its similarities in float32 whatever the input (``BiModalContrastiveLoss.forward``), so the gradients
#: of its projection heads carry float32 rounding, which the order of a multi-threaded sum moves (measured: up to
#: 3e-6 on the PVT S4 case with OMP_NUM_THREADS=1, beyond TOL); they are compared at this tolerance
TOL_FLOAT32 = 1e-4


gen = load_tool(osp.join(DATA, 'make_reference.py'))


def assert_record(new: dict, ref: dict, what: str, tol: float = TOL) -> None:
    """Compare two records of :func:`make_reference.record` within ``tol``, absolutely relative to the tensor's
    largest value or FLOOR, whichever is larger."""
    assert sorted(new) == sorted(ref), what
    if 'full' in ref:
        a, b = new['full'], ref['full']
        assert a.shape == b.shape, what
        scale = max(float(b.abs().max()), FLOOR)
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale, msg=what)
        return
    assert torch.equal(new['shape'], ref['shape']), what
    abs_sum = float(ref['abs_sum'])
    torch.testing.assert_close(new['abs_sum'], ref['abs_sum'], rtol=tol, atol=0.0, msg=what)
    torch.testing.assert_close(new['sum'], ref['sum'], rtol=0.0, atol=tol * abs_sum, msg=what)
    scale = max(float(ref['values'].abs().max()), FLOOR)
    torch.testing.assert_close(new['values'], ref['values'], rtol=tol, atol=tol * scale, msg=what)


@pytest.mark.parametrize('name', sorted(gen.MODELS))
def test_logits_losses_and_gradients_match_the_reference(name):
    ref = torch.load(osp.join(DATA, f'{name}.pt'), weights_only=True)
    new = gen.run(name)
    assert_record(new['tensor'], ref['tensor'], f'{name}: mode=tensor logits')
    assert sorted(new['stages']) == sorted(ref['stages'])
    for stage in ref['stages']:
        assert_record(new['stages'][stage], ref['stages'][stage], f'{name}: stage {stage} logits')
    assert sorted(new['losses']) == sorted(ref['losses'])
    for key, value in ref['losses'].items():
        torch.testing.assert_close(new['losses'][key], value, rtol=TOL, atol=TOL, msg=f'{name}: {key}')
    assert sorted(new['grads']) == sorted(ref['grads']), f'{name}: parameters (reference names) differ'
    assert new['no_grad'] == ref['no_grad']
    for key, value in ref['grads'].items():
        tol = TOL_FLOAT32 if key.startswith('bcl_loss.') else TOL
        assert_record(new['grads'][key], value, f'{name}: gradient of {key}', tol)


def _counted():
    with open(osp.join(DATA, 'counts.json')) as f:
        return json.load(f)


COUNTS = _counted()
#: configs whose counts the default run checks (each costs ~20 s on a CPU: the FLOP trace): the models of the
#: logits references and one ablation per kind of change; CCFORMER_EQUIVALENCE_ALL=1 checks every config (measured:
#: all pass, 12 min on 2 CPU cores)
COUNTED = [
    'configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py',
    'configs/ccformer/ccformer_tiny-paper_1xb2-toy_avss-64x64.py',
    'configs/ccformer/ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py',
    'configs/ccformer/ccformer_pvtv2-b5-robust_1xb6-40e_avss-224x224.py',
    'configs/ccformer/ablations/ccformer_pvtv2-b5-wo-eim_1xb2-60e_avsbench-s4-224x224.py',
    'configs/ccformer/ablations/ccformer_pvtv2-b5-wo-iti_1xb2-60e_avsbench-s4-224x224.py',
    'configs/ccformer/ablations/ccformer_pvtv2-b5-gen-repeat_1xb2-60e_avsbench-s4-224x224.py',
    'configs/ccformer/ablations/ccformer_pvtv2-b5-bcl-enhanced-visual_1xb2-60e_avsbench-s4-224x224.py',
]
if os.environ.get('CCFORMER_EQUIVALENCE_ALL') == '1':
    COUNTED = sorted(COUNTS)


#: configs added since the reference -> the reference config whose model they share (AVSS with BCL: what the AVSS
#: configs trained before; ResNet-50 from a COCO detector: the same model, other pretrained weights; the query
#: generator on the whole clip's audio and one-way BCL: what the paper configs computed before they followed the
#: authors' code)
NEW_CONFIGS = {
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
    'configs/ccformer/ablations/ccformer_pvtv2-b5-bcl_1xb6-40e_avss-224x224.py': (
        'configs/ccformer/ccformer_pvtv2-b5_1xb6-40e_avss-224x224.py'
    ),
    **{
        f'configs/ccformer/ccformer_r50-coco_{task}-224x224.py': f'configs/ccformer/ccformer_r50_{task}-224x224.py'
        for task in ('1xb2-60e_avsbench-s4', '1xb2-120e_avsbench-ms3', '1xb6-40e_avss')
    },
    # real recordings as negative audio: the same model, another training set
    **{
        f'configs/ccformer/ccformer_tiny-robust-bank_1xb2-toy_avsbench-{task}-64x64.py': (
            f'configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-{task}-64x64.py'
        )
        for task in ('s4', 'ms3')
    },
}
if os.environ.get('CCFORMER_EQUIVALENCE_ALL') == '1':
    COUNTED = COUNTED + sorted(NEW_CONFIGS)


def test_every_config_is_counted():
    configs = [
        osp.relpath(p, ROOT)
        for pattern in ('configs/ccformer/*.py', 'configs/ccformer/ablations/*.py')
        for p in glob.glob(osp.join(ROOT, pattern))
    ]
    assert sorted(set(COUNTS) | set(NEW_CONFIGS)) == sorted(configs)
    assert set(NEW_CONFIGS.values()) <= set(COUNTS)
    assert set(COUNTED) <= set(COUNTS) | set(NEW_CONFIGS)


@pytest.mark.parametrize('config', COUNTED)
def test_parameter_and_flop_counts_match_the_reference(config):
    assert gen.count(gen.count_cfg(config)) == COUNTS[NEW_CONFIGS.get(config, config)]


@pytest.mark.parametrize(
    'config',
    [
        'configs/ccformer/ccformer_tiny-paper_1xb2-toy_avss-64x64.py',
        'configs/ccformer/ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py',
    ],
)
def test_fidelity_defaults_keep_the_parameter_count(config):
    """The paper configs' query generator reads each frame's own audio and BCL sums both directions (the authors'
    code) with exactly the parameters of the reference; only the query generator's attention FLOPs (one audio key
    per frame instead of T) go down."""
    cfg = gen.model_cfg(config)
    assert cfg['decode_head']['query_generator']['audio_context'] == 'frame'
    assert cfg['bcl_loss']['directions'] == 'both'
    now, ref = gen.count(gen.count_cfg(config, earlier=False)), COUNTS[config]
    assert now['params'] == ref['params']
    assert {k: v for k, v in now['flops'].items() if k != 'decode_head'} == {
        k: v for k, v in ref['flops'].items() if k != 'decode_head'
    }
    assert now['flops']['decode_head'] < ref['flops']['decode_head']


def test_fidelity_ablations_restore_the_reference_behaviour():
    """The ablation configs hold what the paper configs computed before: the references' options."""
    for task in ('1xb2-60e_avsbench-s4', '1xb2-120e_avsbench-ms3'):
        clip = gen.model_cfg(f'configs/ccformer/ablations/ccformer_pvtv2-b5-gen-clip-audio_{task}-224x224.py')
        one_way = gen.model_cfg(f'configs/ccformer/ablations/ccformer_pvtv2-b5-bcl-one-way_{task}-224x224.py')
        paper = f'configs/ccformer/ccformer_pvtv2-b5_{task}-224x224.py'
        assert clip == gen.model_cfg(paper, gen.CLIP_AUDIO_QUERIES)
        assert one_way == gen.model_cfg(paper, gen.ONE_WAY_BCL)


def test_checkpoints_of_the_reference_layout_load(tmp_path):
    """A state dict in the reference layout loads strictly (the segmentor renames its keys) and gives the same
    logits; the converter script writes the current layout."""
    config, n, t, size, padded, options = gen.MODELS['tiny_avss']
    model = gen.build(gen.model_cfg(config, options)).eval()
    gen.fill_(model)
    old = {gen.to_reference_name(k): v.clone() for k, v in model.state_dict().items()}
    assert set(old) != set(model.state_dict())  # the layouts differ
    fresh = gen.build(gen.model_cfg(config, options)).eval()
    fresh.load_state_dict(dict(old), strict=True)
    frames, audio, samples, _ = gen.clips(1, t, size, model.decode_head.num_classes)
    with torch.no_grad():
        torch.testing.assert_close(
            fresh(frames.float(), samples, mode='tensor', audio=audio.float()),
            model(frames.float(), samples, mode='tensor', audio=audio.float()),
            rtol=0,
            atol=0,
        )
    src, dst = tmp_path / 'old.pth', tmp_path / 'new.pth'
    torch.save(dict(state_dict=old, meta=dict(note='earlier layout')), src)
    subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/model_converters/convert_ccformer_keys.py'), str(src), str(dst)],
        check=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    converted = torch.load(dst, weights_only=True)
    assert sorted(converted['state_dict']) == sorted(model.state_dict())
    assert converted['meta'] == dict(note='earlier layout')
    # the strict loader of init_avs_model / tools/test.py takes the earlier layout too
    from projects.ccformer.engine.safe_checkpoint import load_model_checkpoint

    third = gen.build(gen.model_cfg(config, options)).eval()
    load_model_checkpoint(third, str(src), config, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(third.state_dict()[key], value), key
