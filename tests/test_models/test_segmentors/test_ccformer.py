"""CCFormer segmentor: the three modes, post-processing, losses with padded frames, a few training steps, the
pretrained-file check, and every full / short / tiny config."""

import copy
import functools
import glob
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
TINY = osp.join(ROOT, 'configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')
H = W = 64


@functools.lru_cache(maxsize=None)
def load_cfg(path: str) -> Config:
    """Config.fromfile, parsed once per test session (callers copy before changing anything)."""
    return Config.fromfile(path)


def tiny_model_cfg(num_classes: int = 1) -> ConfigDict:
    cfg = load_cfg(TINY)
    init_default_scope('mmseg')
    model = copy.deepcopy(cfg.model)
    model.decode_head.num_classes = num_classes
    if num_classes > 1:  # the binary config's Dice + BCE do not apply: per-pixel cross-entropy, as the AVSS configs
        model.decode_head.loss_decode = None
    return model


def build(num_classes: int = 1, **overrides):
    torch.manual_seed(0)
    cfg = tiny_model_cfg(num_classes)
    cfg.update(overrides)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def toy_clips(n=2, t=3, num_classes=1, seed=0):
    """Fixed clips: a bright square per frame (position varies), audio whose level says if it sounds."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(n, t, 3, H, W, generator=g) * 0.2
    gts = torch.zeros(n, t, H, W, dtype=torch.long)
    audio = torch.randn(n, t, 1, 96, 64, generator=g) * 0.1
    for i in range(n):
        for j in range(t):
            y, x = 8 + 8 * ((i + j) % 4), 8 + 10 * ((i * 2 + j) % 4)
            frames[i, j, :, y : y + 16, x : x + 16] = 1.0
            sounding = (i + j) % 2 == 0
            if sounding:
                gts[i, j, y : y + 16, x : x + 16] = 1 if num_classes == 1 else 1 + (i + j) % (num_classes - 1)
                audio[i, j] += 1.0
    return frames, audio, gts


def samples(gts, frame_valid=None, gt_valid=None, **meta):
    out = []
    for i, gt in enumerate(gts):
        t = gt.shape[0]
        m = dict(
            img_shape=(H, W),
            ori_shape=(H, W),
            pad_shape=(H, W),
            num_frames=t,
            flip=False,
            frame_valid=list(frame_valid[i]) if frame_valid else [1] * t,
            gt_valid=list(gt_valid[i]) if gt_valid else [1] * t,
        )
        m.update(meta)
        out.append(SegDataSample(gt_sem_seg=PixelData(data=gt), metainfo=m))
    return out


@pytest.fixture(scope='module')
def binary_model():
    return build()


def test_three_modes_binary(binary_model):
    model = binary_model.eval()
    frames, audio, gts = toy_clips()
    with torch.no_grad():
        logits = model(frames, mode='tensor', audio=audio)  # no data_samples needed
        assert logits.shape == (2, 3, 1, H, W)
        ds = samples(gts, ori_shape=(48, 80), flip=True, flip_direction='horizontal')
        preds = model(frames, ds, mode='predict', audio=audio)
    assert len(preds) == 2
    for i, p in enumerate(preds):
        assert p.pred_sem_seg.data.shape == (3, 48, 80) and p.seg_logits.data.shape == (3, 48, 80)
        ref = F.interpolate(logits[i, :, :, :, :].flip(-1), size=(48, 80), mode='bilinear', align_corners=False)
        torch.testing.assert_close(p.seg_logits.data, ref[:, 0], rtol=1e-4, atol=1e-4)
        assert torch.equal(p.pred_sem_seg.data, (ref[:, 0] > 0).long())
    model.train()
    losses = model(frames, samples(gts), mode='loss', audio=audio)
    assert 'loss_bcl' in losses and any(k.startswith('decode.') for k in losses)
    assert all(torch.isfinite(v).all() for v in losses.values())


def test_predict_crops_padding(binary_model):
    model = binary_model.eval()
    frames, audio, gts = toy_clips()
    with torch.no_grad():
        logits = model(frames, mode='tensor', audio=audio)
        preds = model(frames, samples(gts, img_shape=(40, 56), ori_shape=(40, 56)), mode='predict', audio=audio)
    torch.testing.assert_close(preds[0].seg_logits.data, logits[0, :, 0, :40, :56])


def test_binary_threshold_is_the_heads(binary_model):
    """K = 1: a pixel is foreground where sigmoid(logit) > decode_head.threshold (0.5: logit > 0)."""
    model = binary_model.eval()
    frames, audio, gts = toy_clips()
    try:
        with torch.no_grad():
            probs = model(frames, mode='tensor', audio=audio).sigmoid()
            for p in (0.5, float(probs.quantile(0.25)), float(probs.quantile(0.75))):
                model.decode_head.threshold = p
                preds = model(frames, samples(gts), mode='predict', audio=audio)
                for ds in preds:
                    logit = math.log(p / (1 - p))  # sigmoid(x) > p, without sigmoid's rounding at p
                    assert torch.equal(ds.pred_sem_seg.data, (ds.seg_logits.data > logit).long())
                fraction = float(torch.cat([ds.pred_sem_seg.data for ds in preds]).float().mean())
                assert abs(fraction - float((probs > p).float().mean())) < 0.01  # moves with the threshold
            model.decode_head.threshold = 1.0
            with pytest.raises(ValueError, match='threshold'):
                model(frames, samples(gts), mode='predict', audio=audio)
    finally:
        model.decode_head.threshold = 0.5
    with pytest.raises(ValueError, match='threshold'):
        build(decode_head=dict(tiny_model_cfg().decode_head, threshold=0.0))


def test_semantic_padded_frames():
    k = 7
    model = build(num_classes=k)
    frames, audio, gts = toy_clips(num_classes=k)
    fv = [[1, 1, 0], [1, 1, 1]]
    gts[0, 2] = 0
    frames[0, 2] = 0
    model.train()
    losses = model(frames, samples(gts, frame_valid=fv, gt_valid=[[1, 1, 0], [1, 0, 1]]), mode='loss', audio=audio)
    total = sum(v for key, v in losses.items() if 'loss' in key)
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        preds = model(frames, samples(gts, frame_valid=fv), mode='predict', audio=audio)
    assert 'seg_logits' not in preds[0]
    assert preds[0].pred_sem_seg.data.shape == (3, H, W)
    assert int(preds[0].pred_sem_seg.data[2].abs().sum()) == 0  # padded frame -> background
    assert int(preds[0].pred_sem_seg.data.max()) < k


def test_use_bcl_switch_and_input_errors():
    model = build(use_bcl=False)
    assert model.bcl_loss is None
    frames, audio, gts = toy_clips(n=1)
    losses = model(frames, samples(gts), mode='loss', audio=audio)
    assert 'loss_bcl' not in losses
    with pytest.raises(ValueError, match='audio'):
        model(frames, mode='tensor')
    with pytest.raises(ValueError, match=r'\(N, T, C, H, W\)'):
        model(frames[0], mode='tensor', audio=audio)


def test_training_steps_lower_the_loss():
    model = build()
    model.train()
    frames, audio, gts = toy_clips(n=2, t=2)
    data = dict(inputs=[(f * 255).to(torch.uint8) for f in frames], audio=list(audio), data_samples=samples(gts))
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01))
    history = []
    for _ in range(6):
        log = model.train_step(copy.deepcopy(data), optim)
        history.append(float(log['loss']))
    assert all(map(lambda v: v == v, history))
    assert history[-1] < history[0]


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    cfg = tiny_model_cfg()
    cfg.audio_encoder.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'vggish-10086976.pth'))
    model = MODELS.build(cfg)
    with pytest.raises(FileNotFoundError, match='vggish-10086976.pth.*Pretrained weights'):
        model.init_weights()


# ------------------------------------------------------------------ configs
FULL = {
    'ccformer_pvt_s4.py': ('ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py', 'TimmPyramidBackbone', 60, 2, 1),
    'ccformer_pvt_ms3.py': ('ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py', 'TimmPyramidBackbone', 120, 2, 1),
    'ccformer_pvt_avss.py': ('ccformer_pvtv2-b5_1xb6-40e_avss-224x224.py', 'TimmPyramidBackbone', 40, 6, 71),
    'ccformer_r50_s4.py': ('ccformer_r50_1xb2-60e_avsbench-s4-224x224.py', 'mmdet.ResNet', 60, 2, 1),
    'ccformer_r50_ms3.py': ('ccformer_r50_1xb2-120e_avsbench-ms3-224x224.py', 'mmdet.ResNet', 120, 2, 1),
    'ccformer_r50_avss.py': ('ccformer_r50_1xb6-40e_avss-224x224.py', 'mmdet.ResNet', 40, 6, 71),
}


@pytest.mark.parametrize('short', sorted(FULL))
def test_full_and_short_configs(short):
    full, backbone, epochs, batch, k = FULL[short]
    a = Config.fromfile(osp.join(ROOT, 'configs', short))
    b = load_cfg(osp.join(ROOT, 'configs/ccformer', full))
    assert a.to_dict() == b.to_dict()
    assert a.default_scope == 'mmseg' and a.custom_imports.imports == ['projects.ccformer']
    assert a.model.backbone.type == backbone and a.model.decode_head.num_classes == k
    assert a.model.use_bcl == (k == 1)  # the paper trains AVSS with the per-pixel cross-entropy alone
    assert a.model.backbone.init_cfg.checkpoint.startswith('pretrained/')
    assert a.model.audio_encoder.init_cfg.checkpoint == 'pretrained/vggish-10086976.pth'
    assert a.train_cfg.max_epochs == epochs and a.train_dataloader.batch_size == batch
    opt = a.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.lr == 2e-5 and opt.weight_decay == 0.01
    assert a.default_hooks.checkpoint.save_best == 'mIoU'
    aug = [t['type'] for t in a.train_dataloader.dataset.pipeline[-2].transforms]
    assert aug == ['RandomResize', 'RandomCrop', 'RandomFlip', 'PhotoMetricDistortion', 'Pad']
    assert a.val_evaluator.type == ('AVSSMetric' if k == 71 else 'AVSBenchMetric')


def _diff(new, old):
    """Nested dict of the leaves of ``new`` that differ from ``old``."""
    out = {}
    for key, val in new.items():
        if isinstance(val, dict) and isinstance(old.get(key), dict):
            sub = _diff(val, old[key])
            if sub:
                out[key] = sub
        elif old.get(key, object()) != val:
            out[key] = val
    return out


ABLATIONS = sorted(glob.glob(osp.join(ROOT, 'configs/ccformer/ablations/*.py')))
IDENTITY = ('gen-attention', 'bcl-enhanced-audio')  # the full model, listed for the tables


def test_ablation_set_is_complete():
    tags = {osp.basename(p).split('_')[1][len('pvtv2-b5-') :] for p in ABLATIONS if 'avss' not in p}
    assert tags >= {
        'wo-eim',
        'wo-ave',
        'wo-vae',
        'wo-ici',
        'wo-iti',
        'wo-bcl',
        'gen-none',
        'gen-repeat',
        'ici1',
        'ici2',
        'ici4',
        'iti1',
        'iti2',
        'iti4',
        'bcl-original-visual',
        'bcl-enhanced-visual',
        'gen-clip-audio',
        'bcl-one-way',
    }
    assert all(any(t in p for p in ABLATIONS if 'ms3' in p) for t in tags)
    avss = [osp.basename(p) for p in ABLATIONS if 'avss' in p]
    # AVSS + BCL (the paper trains without) and the query generator on the whole clip's audio (10 frames)
    assert avss == [
        'ccformer_pvtv2-b5-bcl_1xb6-40e_avss-224x224.py',
        'ccformer_pvtv2-b5-gen-clip-audio_1xb6-40e_avss-224x224.py',
    ]


@pytest.mark.parametrize('path', [p for p in ABLATIONS if 'avsbench-s4' in p], ids=lambda p: osp.basename(p)[:40])
def test_ablation_builds_and_runs(path):
    """Apply the ablation's change (vs its full config) to the tiny model, build it, run loss and tensor modes."""
    abl = load_cfg(path)
    full = load_cfg(osp.join(ROOT, 'configs/ccformer/ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py'))
    change = _diff(abl.model.to_dict(), full.model.to_dict())
    assert bool(change) != any(t in path for t in IDENTITY), change
    tiny = Config(dict(model=tiny_model_cfg().to_dict()))
    tiny.merge_from_dict({'model.' + k: v for k, v in _flatten(change).items()})
    torch.manual_seed(0)
    model = MODELS.build(tiny.model)
    frames, audio, gts = toy_clips(n=2, t=2)
    with torch.no_grad():
        losses = model(frames, samples(gts), mode='loss', audio=audio)
        assert all(torch.isfinite(v).all() for v in losses.values())
        assert ('loss_bcl' in losses) == ('wo-bcl' not in path)
        assert model.eval()(frames, mode='tensor', audio=audio).shape == (2, 2, 1, H, W)


def _flatten(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f'{prefix}{k}.'))
        else:
            out[prefix + k] = v
    return out


@pytest.mark.parametrize('task', ['avsbench-s4', 'avsbench-ms3', 'avss'])
@pytest.mark.parametrize('recipe', ['tiny-robust', 'tiny-paper'])
def test_tiny_configs(task, recipe):
    cfg = Config.fromfile(osp.join(ROOT, f'configs/ccformer/ccformer_{recipe}_1xb2-toy_{task}-64x64.py'))
    train = cfg.train_dataloader.dataset
    if recipe == 'tiny-robust':  # trained to segment only what sounds (configs/_base_/robust.py)
        assert train.type == 'NegativeAudioDataset' and cfg.model.neck.audio_window == 0
        assert cfg.model.decode_head.presence_head.type == 'AudioVisualPresence'
        assert (cfg.model.decode_head.get('loss_decode') is None) == (task == 'avss')
        train = train.dataset
    else:
        assert 'presence_head' not in cfg.model.decode_head
    assert train.data_root.startswith('data/toy/')
    assert cfg.model.backbone.init_cfg is None  # no pretrained files: trains from scratch
    assert cfg.model.audio_encoder.init_cfg.type == 'Kaiming'  # keeps the sounds apart from the first step
    assert cfg.model.decode_head.num_classes == (71 if task == 'avss' else 1)


def test_ms3_ablations_mirror_s4():
    """Every MS3 ablation applies the same model change to the MS3 full config as its S4 twin does to S4."""
    full = {
        t: load_cfg(osp.join(ROOT, 'configs/ccformer', f)).model.to_dict()
        for t, f in (
            ('s4', 'ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py'),
            ('ms3', 'ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py'),
        )
    }
    ms3 = [p for p in ABLATIONS if 'avsbench-ms3' in p]
    assert len(ms3) == len([p for p in ABLATIONS if 'avsbench-s4' in p])
    for path in ms3:
        twin = path.replace('1xb2-120e_avsbench-ms3', '1xb2-60e_avsbench-s4')
        a = _diff(load_cfg(path).model.to_dict(), full['ms3'])
        b = _diff(load_cfg(twin).model.to_dict(), full['s4'])
        assert a == b, path
        assert load_cfg(path).train_cfg.max_epochs == 120


def test_robust_s4_config_with_category_supervision_trains_and_predicts(toy_s4_root):
    """``robust_category_s4`` switched on in the tiny robust S4 config: the toy S4 clips' CSV categories reach the
    head through the real train pipeline, both category losses are live, and the prediction is the head's."""
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import Runner

    from projects.ccformer.engine import set_data_root

    init_default_scope('mmseg')
    cfg = Config.fromfile(TINY)
    cfg.model.decode_head.category_head = dict(cfg.robust_category_s4, num_categories=8)
    set_data_root(cfg, toy_s4_root)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    dataset = Runner.build_dataloader(cfg.train_dataloader).dataset
    batch = pseudo_collate([dataset[i] for i in range(2)])
    assert [s.metainfo['category_index'] for s in batch['data_samples']] == [
        dataset.dataset.get_data_info(i)['category_index'] for i in range(2)
    ]
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert float(losses['decode.loss_category_audio']) > 0 and float(losses['decode.loss_category_visual']) > 0
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.decode_head.category_head.visual_cls.weight.grad.abs().sum() > 0
    assert model.decode_head.category_head.category_counts.sum() > 0  # counted in training
    model.eval()
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        x = model.extract_feat(data['inputs'], audio=data['audio'])
        expected = model.empty_silent_frames(model.decode_head.predict(x), data['audio'])  # empty_when_silent
        out = model(data['inputs'], mode='tensor', audio=data['audio'])
    assert out.shape == (2, 5, 1, 64, 64)
    torch.testing.assert_close(out.flatten(0, 1), F.interpolate(expected, size=(64, 64), mode='bilinear'))
