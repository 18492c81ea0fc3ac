"""CCFormer(empty_when_silent=True): frames whose audio is digital silence get empty masks at inference."""

import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from test_ccformer import ROOT, build, samples, toy_clips

from projects.ccformer.datasets.audio import SILENT_LOGMEL, silent_examples, waveform_to_logmel
from projects.ccformer.models.segmentors.ccformer import SILENT_LOGIT

FLOOR = math.log(0.01)


def _examples(loud_rows: int) -> np.ndarray:
    """One log-mel example at the floor with ``loud_rows`` of its 96 rows above it."""
    x = np.full((96, 64), FLOOR, np.float32)
    x[:loud_rows, 5] = FLOOR + 0.5
    return x


@pytest.mark.parametrize('loud_rows, silent', [(0, True), (48, True), (49, False), (96, False)])
def test_silent_examples_rule_numpy_and_torch(loud_rows, silent):
    """Half of the rows or more at the floor in every bin: silent; the same answer for arrays and tensors."""
    x = _examples(loud_rows)
    assert bool(silent_examples(x)) is silent
    assert bool(silent_examples(torch.from_numpy(x))) is silent
    batch = np.stack([x, _examples(96)])[None]  # (1, 2, 96, 64)
    assert silent_examples(batch).shape == (1, 2) and silent_examples(batch).tolist() == [[silent, False]]


def test_silent_examples_of_waveforms():
    """Zeros through the VGGish front end are silent (float32 rounding of log(0.01) included); noise one LSB of
    16-bit PCM loud, or a quiet tone, is not."""
    rate = 16000
    zeros = waveform_to_logmel(np.zeros(3 * rate), rate)
    assert zeros.dtype == np.float32 and float(zeros.max()) <= SILENT_LOGMEL and silent_examples(zeros).all()
    dither = np.random.default_rng(0).integers(-1, 2, 3 * rate) / 32768.0
    assert not silent_examples(waveform_to_logmel(dither, rate)).any()
    tone = 0.01 * np.sin(2 * np.pi * 440 * np.arange(3 * rate) / rate)
    half = np.concatenate([np.zeros(int(1.5 * rate)), tone[: int(1.5 * rate)]])
    # examples at 0 and 0.96 s: the first is silent, the second holds 0.52 s of silence (52 of its 96 rows), the third
    # (1.92-2.88 s) none
    assert silent_examples(waveform_to_logmel(half, rate)).tolist() == [True, True, False]


def _with_silence(audio: torch.Tensor, frames=((0, 1), (1, 0))) -> torch.Tensor:
    audio = audio.clone()
    for i, j in frames:
        audio[i, j] = FLOOR
    return audio


def _eager(model):
    """The random model made to see its last class and to hear something everywhere, so that without the gate
    every frame, the silent ones included, has foreground."""
    with torch.no_grad():
        model.decode_head.seg_head.fc.bias[-1] += 20.0
        model.decode_head.presence_head.bias += 20.0
    return model


@pytest.mark.parametrize('num_classes', [1, 7])
def test_silent_frames_are_emptied_and_the_rest_unchanged(num_classes):
    model = _eager(build(num_classes)).eval()
    frames, audio, gts = toy_clips(num_classes=num_classes)
    audio = _with_silence(audio)
    silent = torch.zeros(2, 3, dtype=torch.bool)
    silent[0, 1] = silent[1, 0] = True
    with torch.no_grad():
        model.empty_when_silent = False
        plain = model(frames, mode='tensor', audio=audio)
        plain_preds = model(frames, samples(gts), mode='predict', audio=audio)
        model.empty_when_silent = True
        gated = model(frames, mode='tensor', audio=audio)
        preds = model(frames, samples(gts), mode='predict', audio=audio)
    torch.testing.assert_close(gated[~silent], plain[~silent], rtol=0, atol=0)
    for i, (p, q) in enumerate(zip(preds, plain_preds)):
        torch.testing.assert_close(p.pred_sem_seg.data[~silent[i]], q.pred_sem_seg.data[~silent[i]])
        assert (q.pred_sem_seg.data[silent[i]] != 0).all()  # without the gate: foreground everywhere
        assert int(p.pred_sem_seg.data[silent[i]].abs().sum()) == 0
    if num_classes == 1:
        assert (gated[silent] == -SILENT_LOGIT).all()
        assert (preds[0].seg_logits.data[1] == -SILENT_LOGIT).all()
    else:
        assert (gated[silent].argmax(1) == 0).all()


def test_training_is_unchanged():
    frames, audio, gts = toy_clips()
    audio = _with_silence(audio)
    losses = {}
    for flag in (False, True):
        model = build(empty_when_silent=flag).train()
        torch.manual_seed(1)
        losses[flag] = model(frames, samples(gts), mode='loss', audio=audio)
    assert losses[False].keys() == losses[True].keys()
    for key in losses[False]:
        torch.testing.assert_close(losses[True][key], losses[False][key], rtol=0, atol=0)


def test_the_gate_is_in_the_onnx_export(tmp_path):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    from projects.ccformer.deployment import ORTSegmentor
    from projects.ccformer.deployment.onnx_export import TensorCore, dummy_inputs, export_onnx, verify_onnx

    model = _eager(build(empty_when_silent=True)).eval()
    frames, audio, _ = toy_clips(n=2, t=5)
    audio = _with_silence(audio, frames=((0, 4), (1, 2)))
    export_onnx(model, str(tmp_path / 'm.onnx'), num_frames=5, input_size=(64, 64), batch_size=1)
    out = ORTSegmentor(str(tmp_path / 'm.onnx'), num_threads=1).forward(frames.numpy(), audio.numpy())
    with torch.no_grad():
        ref = TensorCore(model)(frames, audio).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert (out[0, 4] == -SILENT_LOGIT).all() and (out[1, 2] == -SILENT_LOGIT).all()
    assert (out[0, :4] > -SILENT_LOGIT).all()
    # the export tool's check hears silence too, and its relative difference is over the logits the rule left
    report = verify_onnx(model, str(tmp_path / 'm.onnx'), batch_sizes=(2,))['batch_2']
    frames2, audio2 = dummy_inputs(2, 5, (64, 64), seed=100)
    audio2[0, -1] = FLOOR
    with torch.no_grad():
        ref2 = TensorCore(model)(frames2, audio2).numpy()
    assert (ref2[0, -1] == -SILENT_LOGIT).all() and (ref2[0, :-1] > -SILENT_LOGIT).all()
    scale = np.abs(ref2[np.abs(ref2) < SILENT_LOGIT / 2]).max()
    assert report['max_rel_diff'] == pytest.approx(report['max_abs_diff'] / scale)
    assert report['max_rel_diff'] < 1e-4 and report['mask_agreement'] > 0.999


def test_robust_configs_set_it_and_paper_configs_do_not():
    configs = osp.join(ROOT, 'configs/ccformer')
    robust = Config.fromfile(osp.join(configs, 'ccformer_tiny-robust-bank_1xb2-toy_avsbench-ms3-64x64.py'))
    paper = Config.fromfile(osp.join(configs, 'ccformer_tiny-paper_1xb2-toy_avsbench-s4-64x64.py'))
    assert robust.model.empty_when_silent is True
    assert paper.model.get('empty_when_silent', False) is False


def test_the_rule_reads_the_audio_before_a_bfloat16_model_casts_it():
    """In bfloat16 the floor log(0.01) and a second 0.02 above it round to one value: the rule reads the float32
    audio, so a bf16 model empties the silent frame and not the quiet one."""
    model = _eager(build(empty_when_silent=True)).eval().to(torch.bfloat16)
    frames, audio, _ = toy_clips()
    audio = _with_silence(audio)
    audio[1, 2] = FLOOR + 0.02  # very quiet, not digital silence
    assert torch.tensor(FLOOR + 0.02).bfloat16() == torch.tensor(FLOOR).bfloat16()
    with torch.no_grad():
        out = model(frames, mode='tensor', audio=audio)
    assert (out[0, 1] < -9000).all() and (out[1, 0] < -9000).all()
    assert (out[1, 2] > -9000).all() and (out[0, 0] > -9000).all()
