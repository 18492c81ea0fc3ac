"""Tests of the ONNX export (tools/deployment/pytorch2onnx.py, projects/ccformer/deployment/onnx_export.py) and the
ONNX Runtime backend (projects/ccformer/deployment/ort_segmentor.py) on the tiny config with random weights."""

import glob
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from _tools import load_tool

pytest.importorskip('onnxruntime', reason='requirements/deploy.txt is installed by tools/setup_env.sh')
pytest.importorskip('onnx')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')

from projects.ccformer.apis import inference_avs_model, init_avs_model, segment_video, write_video  # noqa: E402
from projects.ccformer.datasets.audio import load_logmel_pkl, load_wav  # noqa: E402
from projects.ccformer.deployment import ORTSegmentor  # noqa: E402
from projects.ccformer.deployment.onnx_export import export_onnx  # noqa: E402


@pytest.fixture(scope='module')
def clips(toy_s4_root):
    from projects.ccformer.datasets import AVSBenchS4Dataset

    ds = AVSBenchS4Dataset(data_root=toy_s4_root, split='test', pipeline=[], test_mode=True)
    return [ds.get_data_info(i) for i in range(len(ds))]


@pytest.fixture(scope='module')
def exported(tmp_path_factory, clips):
    """The tiny model (random weights from the config's init: ReLU-aware for VGGish, so the sound changes the
    output), its checkpoint and its export at 64 x 64 by the tool, with the tool's report.

    The random model's logits are tiny (about 0.015) and of one sign; its last 1x1 convolution is rescaled so that on
    the toy clips they spread around 0 with a std of 0.5, which makes the 1e-4 tolerance and the mask agreement
    meaningful. (The spread is a small deviation of nearly equal random features, so fp32 rounding is amplified: a
    relative difference of about 1e-5 of the largest logit here, 1e-7 before the rescaling.)
    """
    torch.manual_seed(0)
    model = init_avs_model(CONFIG, None, device='cpu')
    model.init_weights()
    ref = torch.cat(
        [
            inference_avs_model(
                model, c['frame_paths'], c['audio_path'], return_datasample=True
            ).seg_logits.data.flatten()
            for c in clips
        ]
    )
    fc = model.decode_head.seg_head.fc
    with torch.no_grad():
        scale = 0.5 / ref.std()
        fc.weight.mul_(scale)
        fc.bias.copy_(scale * (fc.bias - ref.median()))
    tmp = tmp_path_factory.mktemp('onnx')
    ckpt = str(tmp / 'tiny.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(
                dataset_meta=dict(classes=('background', 'sounding object'), palette=[[0, 0, 0], [255, 255, 255]])
            ),
        ),
        ckpt,
    )
    onnx_file = str(tmp / 'tiny.onnx')
    report = load_tool('tools/deployment/pytorch2onnx.py').main(
        [CONFIG, ckpt, '--out', onnx_file, '--verify-batch-sizes', '1', '3']  # the size from the config: 64 x 64
    )
    return dict(model=init_avs_model(CONFIG, ckpt, device='cpu'), ckpt=ckpt, onnx=onnx_file, report=report)


@pytest.fixture(scope='module')
def ort_model(exported):
    return ORTSegmentor(exported['onnx'], num_threads=1)


def _rgb(paths, size=None):
    frames = [cv2.imread(p)[..., ::-1].copy() for p in paths]
    return [cv2.resize(f, size) for f in frames] if size else frames


# ------------------------------------------------------------------------------------------------ export
def test_tool_exports_dynamic_batch_and_checks_against_pytorch(exported, ort_model):
    report = exported['report']
    assert report['passed'] and set(report['checks']) == {'batch_1', 'batch_3'}  # N = 3 was not traced
    for res in report['checks'].values():  # fp32: rounding-level differences only
        assert res['max_abs_diff'] < 1e-4 and res['max_rel_diff'] < 1e-4 and res['mask_agreement'] >= 0.999
    meta = report['meta']
    assert meta['num_frames'] == 5 and meta['input_size'] == [64, 64] and meta['num_classes'] == 1
    assert meta['mean'] == pytest.approx([123.675, 116.28, 103.53]) and meta['bgr_to_rgb'] is True
    assert meta['dataset_meta']['classes'] == ['background', 'sounding object']
    assert meta['checkpoint'] == 'tiny.pth'
    # what the runtime reads back
    assert (ort_model.num_frames, ort_model.input_size, ort_model.num_classes) == (5, (64, 64), 1)
    assert ort_model.dataset_meta == meta['dataset_meta']


def test_export_refuses_bad_settings(exported, tmp_path):
    model = exported['model']
    with pytest.raises(ValueError, match='multiples of 32'):
        export_onnx(model, str(tmp_path / 'a.onnx'), 5, (48, 64))
    with pytest.raises(ValueError, match='GridSample'):
        export_onnx(model, str(tmp_path / 'b.onnx'), 5, (64, 64), opset=15)
    tool = load_tool('tools/deployment/pytorch2onnx.py')
    with pytest.raises(SystemExit, match='does not exist'):
        tool.main([CONFIG, str(tmp_path / 'missing.pth'), '--out', str(tmp_path / 'c.onnx')])


def test_runtime_refuses_foreign_or_missing_files(exported, tmp_path):
    import onnx

    proto = onnx.load(exported['onnx'])
    del proto.metadata_props[:]
    bare = str(tmp_path / 'bare.onnx')
    onnx.save(proto, bare)
    fast = dict(graph_optimization_level='disable')  # session set-up in a fraction of the time
    with pytest.raises(ValueError, match='bare.onnx.*not written by tools/deployment/pytorch2onnx.py'):
        ORTSegmentor(bare, **fast)
    proto.metadata_props.add(key='ccformer', value=json.dumps(dict(version=99)))
    onnx.save(proto, bare)
    with pytest.raises(ValueError, match='layout version 99'):
        ORTSegmentor(bare, **fast)
    with pytest.raises(ValueError, match='graph_optimization_level'):
        ORTSegmentor(exported['onnx'], graph_optimization_level='max')
    with pytest.raises(FileNotFoundError, match='pytorch2onnx.py'):
        ORTSegmentor(str(tmp_path / 'none.onnx'))
    (tmp_path / 'junk.onnx').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='junk.onnx: ONNX Runtime cannot load'):
        ORTSegmentor(str(tmp_path / 'junk.onnx'))


def _with_meta(exported, tmp_path, name, **changes):
    """A copy of the exported file whose metadata has ``changes`` (a value None removes the key)."""
    import onnx

    proto = onnx.load(exported['onnx'])
    meta = json.loads(proto.metadata_props[0].value)
    for key, value in changes.items():
        meta.pop(key) if value is None else meta.__setitem__(key, value)
    proto.metadata_props[0].value = json.dumps(meta)
    path = str(tmp_path / name)
    onnx.save(proto, path)
    return ORTSegmentor(path, graph_optimization_level='disable')


def test_threshold_from_the_export_metadata(exported, ort_model, clips, tmp_path):
    """Binary masks are ``sigmoid(logit) > decode_head.threshold`` as stored at export; files without it use 0.5."""
    assert exported['report']['meta']['threshold'] == 0.5 and ort_model.logit_threshold == 0.0
    c = clips[0]
    _, logits = ort_model.predict([_rgb(c['frame_paths'])], [load_logmel_pkl(c['audio_path'])], return_logits=True)
    p = float(1 / (1 + np.exp(-np.median(logits))))  # a threshold between the logits: half the pixels change side
    high = _with_meta(exported, tmp_path, 'high.onnx', threshold=p)
    masks = high.postprocess(logits[0])
    np.testing.assert_array_equal(masks, logits[0, :, 0] > np.log(p / (1 - p)))
    assert (masks != ort_model.postprocess(logits[0])).any()
    old = _with_meta(exported, tmp_path, 'old.onnx', threshold=None)  # exported before the threshold was stored
    assert old.meta['threshold'] == 0.5
    np.testing.assert_array_equal(old.postprocess(logits[0]), ort_model.postprocess(logits[0]))
    with pytest.raises(ValueError, match=r'bad.onnx: metadata threshold 1.5 is not a probability'):
        _with_meta(exported, tmp_path, 'bad.onnx', threshold=1.5)


# ------------------------------------------------------------------------------------------------ equality on toy clips
def test_preprocessing_equals_the_pytorch_pipeline(exported, ort_model, clips):
    """The numpy pre-processing gives exactly the batch the test pipeline and AVSDataPreprocessor give."""
    from mmengine.dataset import Compose, pseudo_collate

    model = exported['model']
    pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    data = model.data_preprocessor(pseudo_collate([pipeline(dict(c)) for c in clips[:2]]), False)
    frames = ort_model.preprocess([_rgb(c['frame_paths']) for c in clips[:2]])
    audio = ort_model.prepare_audio([load_logmel_pkl(c['audio_path']) for c in clips[:2]])
    np.testing.assert_array_equal(frames, data['inputs'].numpy())
    np.testing.assert_array_equal(audio, data['audio'].numpy())


def test_logits_and_masks_match_pytorch_on_toy_clips(exported, ort_model, clips):
    """fp32 logits within 1e-4 of PyTorch and masks equal on >= 99.9% of pixels, through the inference API."""
    model = exported['model']
    frames = [_rgb(c['frame_paths']) for c in clips]
    audio = [c['audio_path'] for c in clips]
    masks, logits = ort_model.predict(frames, [load_logmel_pkl(a) for a in audio], return_logits=True)
    for i, (f, a) in enumerate(zip(frames, audio)):
        ref = inference_avs_model(model, f, a, return_datasample=True).seg_logits.data.numpy()
        diff = np.abs(logits[i, :, 0] - ref).max()
        assert diff < 1e-4
        assert (masks[i] == (ref > 0)).mean() >= 0.999
    # the same through inference_avs_model with the ONNX Runtime model, batched, and with audio given as a wav
    ort_masks = inference_avs_model(ort_model, frames, audio)
    pt_masks = inference_avs_model(model, frames, audio)
    assert len(ort_masks) == len(clips)
    for a, b in zip(ort_masks, pt_masks):
        assert a.shape == (5, 64, 64) and a.dtype == np.uint8
        assert (a == b).mean() >= 0.999
    assert 0.05 < np.mean(pt_masks) < 0.95  # masks that are not trivially constant (the logits spread around 0)
    wav = audio[0].replace('audio_log_mel', 'audio_wav').replace('.pkl', '.wav')
    assert (inference_avs_model(ort_model, frames[0], wav) == pt_masks[0]).mean() >= 0.999


def test_resized_frames_and_size_checks(exported, ort_model, clips):
    """Frames of another size are resized to the exported size and masks come back at the frame size, as the
    PyTorch model with img_size; a conflicting img_size and return_datasample are refused."""
    c = clips[0]
    frames = _rgb(c['frame_paths'], (100, 80))
    ort = inference_avs_model(ort_model, frames, c['audio_path'])
    ref = inference_avs_model(exported['model'], frames, c['audio_path'], img_size=(64, 64))
    assert ort.shape == ref.shape == (5, 80, 100)
    assert (ort == ref).mean() >= 0.999
    with pytest.raises(ValueError, match='exported for 64 x 64 frames, not 224 x 224'):
        inference_avs_model(ort_model, frames, c['audio_path'], img_size=(224, 224))
    with pytest.raises(ValueError, match='return_datasample needs a PyTorch model'):
        inference_avs_model(ort_model, frames, c['audio_path'], return_datasample=True)
    with pytest.raises(ValueError, match='T=5'):
        ort_model.predict([frames[:3]], [load_logmel_pkl(c['audio_path'])])
    bad = load_logmel_pkl(c['audio_path']).copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        ort_model.predict([frames], [bad])


# ------------------------------------------------------------------------------------------------ video and demo
def _video(path, clips, seconds):
    """A video of ``seconds`` s from the toy clips' frames (one a second, 5 fps) with their wav audio."""
    frames = [f for c in clips for f in _rgb(c['frame_paths'])][:seconds]
    wav = [
        load_wav(c['audio_path'].replace('audio_log_mel', 'audio_wav').replace('.pkl', '.wav'))[0][:80000]
        for c in clips
    ]
    write_video(path, frames, 5, np.concatenate(wav)[: seconds * 16000], 16000, repeat=5, crf=0)


def test_segment_video_and_demo_with_onnxruntime(exported, ort_model, clips, tmp_path):
    path = str(tmp_path / 'v.mp4')
    _video(path, clips, 7)
    ort = segment_video(ort_model, path, fps=1, img_size=None)
    ref = segment_video(exported['model'], path, fps=1, img_size=(64, 64))
    assert ort['windows'] == ref['windows'] == [0, 2]
    assert (np.stack(ort['masks']) == np.stack(ref['masks'])).mean() >= 0.999
    demo = load_tool('demo/video_demo.py')
    out = demo.main(
        [
            path,
            '--backend',
            'onnxruntime',
            '--onnx',
            exported['onnx'],
            '--out',
            str(tmp_path / 'o'),
            '--threads',
            '1',
            '--no-audio',
        ]
    )
    pngs = sorted(glob.glob(osp.join(str(tmp_path / 'o'), 'masks', 'v_*.png')))
    assert len(pngs) == len(out['masks']) == 7
    written = np.stack([cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in out['masks']])
    np.testing.assert_array_equal(written, np.stack(ort['masks']).astype(np.uint8) * 255)
    for argv, message in (
        ([path, '--out', 'o'], 'needs CONFIG and CHECKPOINT'),
        ([path, '--backend', 'onnxruntime', '--out', 'o'], 'needs --onnx'),
        (
            [path, '--backend', 'onnxruntime', '--onnx', 'm.onnx', '--out', 'o', '--compile', 'default'],
            '--compile apply to the PyTorch backend only',
        ),
    ):
        with pytest.raises(SystemExit):
            demo.parse_args(argv)


BLOCKER = '''
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(','))


class Block(importlib.abc.MetaPathFinder):
    """Imports of these packages fail as if they were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ModuleNotFoundError(f'No module named {name!r} (blocked by the test)', name=name)
        return None


sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[2])
'''


def _run_blocked(blocked, body, *args):
    code = BLOCKER + body
    proc = subprocess.run(
        [sys.executable, '-c', code, ','.join(blocked), ROOT, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_runtime_needs_neither_torch_nor_openmmlab(exported, ort_model, clips, tmp_path):
    """ORTSegmentor imports and segments with torch, mmengine, mmcv, mmseg, mmdet and timm blocked; the video demo's
    ONNX Runtime path runs with mmcv, mmseg, mmdet and timm blocked (it reads videos through the torch-based API)."""
    c = clips[0]
    np.save(tmp_path / 'frames.npy', np.stack(_rgb(c['frame_paths'])))
    np.save(tmp_path / 'audio.npy', load_logmel_pkl(c['audio_path']))
    out = _run_blocked(
        ['torch', 'mmengine', 'mmcv', 'mmseg', 'mmdet', 'timm'],
        '''
import numpy as np
import projects.ccformer
from projects.ccformer.deployment import ORTSegmentor
seg = ORTSegmentor(sys.argv[3], num_threads=1)
masks = seg.predict([list(np.load(sys.argv[4] + '/frames.npy'))], [np.load(sys.argv[4] + '/audio.npy')])[0]
np.save(sys.argv[4] + '/masks.npy', masks)
assert not {'torch', 'mmengine', 'mmcv', 'mmseg'} & set(sys.modules), sorted(sys.modules)
print('missing', projects.ccformer.OPENMMLAB_MISSING)
''',
        exported['onnx'],
        str(tmp_path),
    )
    assert 'missing mmengine' in out
    np.testing.assert_array_equal(
        np.load(tmp_path / 'masks.npy'),
        ort_model.predict([_rgb(c['frame_paths'])], [load_logmel_pkl(c['audio_path'])])[0],
    )

    video = str(tmp_path / 'v.mp4')
    _video(video, clips, 5)
    _run_blocked(
        ['mmcv', 'mmseg', 'mmdet', 'timm'],
        '''
import runpy
sys.argv = ['video_demo.py', sys.argv[4], '--backend', 'onnxruntime', '--onnx', sys.argv[3], '--out',
            sys.argv[5], '--threads', '1']
runpy.run_path('demo/video_demo.py', run_name='__main__')
assert not {'mmcv', 'mmseg'} & set(sys.modules)
''',
        exported['onnx'],
        video,
        str(tmp_path / 'demo'),
    )
    assert len(glob.glob(str(tmp_path / 'demo' / 'masks' / 'v_*.png'))) == 5


def test_semantic_model_with_avss_resize(toy_avss_root, tmp_path):
    """AVSS (K = 71, T = 10, the test pipeline resizes with PIL as AVSSResize): the numpy pre-processing equals the
    pipeline + preprocessor bit for bit, logits within 1e-4, label maps equal on >= 99.9% of the pixels; an export
    size other than the pipeline's is refused."""
    from mmengine.dataset import Compose, pseudo_collate

    from projects.ccformer.datasets import AVSSDataset

    config = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avss-64x64.py')
    torch.manual_seed(0)
    model = init_avs_model(config, None, device='cpu')
    ds = AVSSDataset(data_root=toy_avss_root, split='test', pipeline=[], test_mode=True)
    clips = [c for c in (ds.get_data_info(i) for i in range(len(ds))) if all(c['frame_paths'])]
    assert clips, 'the toy AVSS test split has a 10-frame (v2) clip'
    c = clips[0]
    frames = _rgb(c['frame_paths'])
    assert frames[0].shape[:2] != (64, 64)  # 80 x 60: the resize is exercised
    data = model.data_preprocessor(pseudo_collate([Compose(model.cfg.test_dataloader.dataset.pipeline)(dict(c))]))
    fc = model.decode_head.seg_head.fc
    with torch.no_grad():  # random logits: one class wins everywhere; centre each class so the argmax varies
        ref = model(data['inputs'], mode='tensor', audio=data['audio'])
        scale = 0.5 / ref.std()
        fc.weight.mul_(scale)
        fc.bias.copy_(scale * (fc.bias - ref.mean(dim=(0, 1, 3, 4))))
        ref = model(data['inputs'], mode='tensor', audio=data['audio']).numpy()
    with pytest.raises(ValueError, match='resizes frames to 64 x 64 .AVSSResize.; export with --shape 64 64'):
        export_onnx(model, str(tmp_path / 'x.onnx'), 10, (96, 96))
    export_onnx(model, str(tmp_path / 'avss.onnx'), 10, (64, 64))
    ort_model = ORTSegmentor(str(tmp_path / 'avss.onnx'), num_threads=1)
    assert (ort_model.num_frames, ort_model.num_classes, ort_model.meta['resize']) == (10, 71, 'pil')
    np.testing.assert_array_equal(ort_model.preprocess([frames]), data['inputs'].numpy())
    _, logits = ort_model.predict([frames], [data['audio'][0].numpy()], return_logits=True)
    assert logits.shape == ref.shape == (1, 10, 71, 64, 64) and np.abs(logits - ref).max() < 1e-4
    ort_masks = inference_avs_model(ort_model, frames, c['audio_path'])
    pt_masks = inference_avs_model(model, frames, c['audio_path'])
    assert ort_masks.shape == pt_masks.shape == (10, 60, 80)
    assert (ort_masks == pt_masks).mean() >= 0.999 and len(np.unique(pt_masks)) > 5


def test_category_head_exports_and_matches_pytorch(clips, tmp_path):
    """A binary model with ``CategoryBridge`` (its counted prior included) exports, and ONNX Runtime gives its
    logits within 1e-4."""
    from mmengine.config import Config

    cfg = Config.fromfile(CONFIG)
    cfg.model.decode_head.category_head = dict(cfg.robust_category_s4, num_categories=4)
    torch.manual_seed(0)
    model = init_avs_model(cfg, None, device='cpu')
    model.init_weights()
    bridge = model.decode_head.category_head
    with torch.no_grad():
        bridge.category_counts.copy_(torch.tensor([5.0, 1.0, 2.0, 0.0]))
        bridge.visual_cls.weight.mul_(50.0)  # random features: make the evidence reach below 0
        bridge.audio_cls.weight.mul_(50.0)
    c = clips[0]
    frames = _rgb(c['frame_paths'])
    export_onnx(model, str(tmp_path / 'cat.onnx'), 5, (64, 64))
    ort_model = ORTSegmentor(str(tmp_path / 'cat.onnx'), num_threads=1)
    audio = load_logmel_pkl(c['audio_path'])[:5]
    _, logits = ort_model.predict([frames], [audio], return_logits=True)
    with torch.no_grad():
        ref = model(
            torch.from_numpy(ort_model.preprocess([frames])), mode='tensor', audio=torch.from_numpy(audio)[None]
        )
    assert logits.shape == tuple(ref.shape) and np.abs(logits - ref.numpy()).max() < 1e-4
    model.decode_head.category_margin = 1e4  # the evidence no longer lowers anything: other logits
    with torch.no_grad():
        plain = model(
            torch.from_numpy(ort_model.preprocess([frames])), mode='tensor', audio=torch.from_numpy(audio)[None]
        )
    assert (plain - ref).abs().max() > 1.0


# ------------------------------------------------------------------------------------------------ faults
def test_predict_without_clips_says_so(ort_model):
    with pytest.raises(ValueError, match=r'ORTSegmentor.predict: no clip given .*N >= 1 clips of T=5 frames'):
        ort_model.predict([], [])


def test_non_finite_onnx_output_is_an_error(exported, clips, tmp_path):
    """An ONNX file whose weights give NaN: predict, the API and the demo stop naming the file (before: empty
    masks, exit 0)."""
    import onnx
    from onnx import numpy_helper

    from projects.ccformer.utils.outputs import NonFiniteOutputError

    proto = onnx.load(exported['onnx'])
    init = next(i for i in proto.graph.initializer if numpy_helper.to_array(i).dtype == np.float32)
    init.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(init), np.nan), init.name))
    broken = str(tmp_path / 'nan.onnx')
    onnx.save(proto, broken)
    seg = ORTSegmentor(broken, num_threads=1)
    c = clips[0]
    with pytest.raises(NonFiniteOutputError, match=r'nan.onnx: the model produced \d+ NaN / infinite logits .*clip 0'):
        seg.predict([_rgb(c['frame_paths'])], [load_logmel_pkl(c['audio_path'])])
    with pytest.raises(NonFiniteOutputError, match='nan.onnx'):
        inference_avs_model(seg, c['frame_paths'], c['audio_path'])
    video = str(tmp_path / 'v.mp4')
    _video(video, clips, 5)
    demo = load_tool('demo/video_demo.py')
    with pytest.raises(SystemExit, match='nan.onnx: the model produced'):
        demo.main([video, '--backend', 'onnxruntime', '--onnx', broken, '--out', str(tmp_path / 'o'), '--no-audio'])
    assert not (tmp_path / 'o').exists()


def test_export_never_leaves_a_half_written_file(exported, tmp_path, monkeypatch):
    """A failed export (here the final check; or a model whose logits are NaN) leaves an earlier file of that name
    as it was and no temporary file."""
    import onnx

    model = exported['model']
    out = tmp_path / 'model.onnx'
    out.write_bytes(b'earlier export')

    def failing_check(path, *args, **kwargs):
        raise onnx.checker.ValidationError('injected failure')

    monkeypatch.setattr(onnx.checker, 'check_model', failing_check)
    with pytest.raises(onnx.checker.ValidationError):
        export_onnx(model, str(out), 5, (64, 64))
    assert out.read_bytes() == b'earlier export' and sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx']
    monkeypatch.undo()
    from projects.ccformer.utils.outputs import NonFiniteOutputError

    bias = model.decode_head.seg_head.fc.bias
    saved = bias.detach().clone()
    with torch.no_grad():
        bias.fill_(float('nan'))
    try:
        with pytest.raises(NonFiniteOutputError, match='NaN'):
            export_onnx(model, str(out), 5, (64, 64))
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    assert out.read_bytes() == b'earlier export' and sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx']
