"""AVSTTAModel, the flip test-time augmentation of ``tools/test.py --tta``, on clips of T frames with the binary
(S4, T = 5) and the semantic (AVSS, T = 10, 71 classes) heads of the tiny configs."""

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

from projects.ccformer.apis import init_avs_model
from projects.ccformer.models.segmentors import AVSTTAModel

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIGS = {
    'binary': osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py'),
    'semantic': osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avss-64x64.py'),
}


@pytest.fixture(scope='module', params=['binary', 'semantic'])
def case(request, toy_s4_root, toy_avss_root):
    """A random tiny model of the head kind, its TTA wrapper and one toy test clip."""
    from projects.ccformer.datasets import AVSBenchS4Dataset, AVSSDataset

    torch.manual_seed(0)
    model = init_avs_model(CONFIGS[request.param], None, device='cpu')
    if request.param == 'binary':
        ds = AVSBenchS4Dataset(data_root=toy_s4_root, split='test', pipeline=[], test_mode=True)
    else:
        ds = AVSSDataset(data_root=toy_avss_root, split='test', pipeline=[], test_mode=True)
    clips = [ds.get_data_info(i) for i in range(len(ds))]
    if request.param == 'semantic':  # random logits: one class wins everywhere; centre each class so argmaxes vary
        ref = torch.stack([_logits(model, c, False) for c in clips])
        fc = model.decode_head.seg_head.fc
        with torch.no_grad():
            scale = 0.5 / ref.std()
            fc.weight.mul_(scale)
            fc.bias.copy_(scale * (fc.bias - ref.mean(dim=(0, 1, 3, 4))))
    return request.param, model, AVSTTAModel(module=model), clips


def _views(model, clips):
    """The collated TestTimeAug batch of the config's ``tta_pipeline``: every key a list over the views."""
    pipeline = Compose(model.cfg.tta_pipeline)
    return pseudo_collate([pipeline(dict(c)) for c in clips])


def _plain(model, clips):
    pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    return model.test_step(pseudo_collate([pipeline(dict(c)) for c in clips]))


def _logits(model, clip, flip: bool):
    """The model's logits (T, K, H, W) of one clip, its frames mirrored before and the logits mirrored back."""
    data = model.data_preprocessor(pseudo_collate([Compose(model.cfg.test_dataloader.dataset.pipeline)(dict(clip))]))
    inputs = data['inputs'].flip(-1) if flip else data['inputs']
    with torch.no_grad():
        out = model(inputs, data['data_samples'], mode='tensor', audio=data['audio'])[0]
    return out.flip(-1) if flip else out


def test_pipeline_gives_the_clip_and_its_mirror(case):
    kind, model, _, clips = case
    data = _views(model, clips[:1])
    assert len(data['inputs']) == 2 and len(data['audio']) == 2
    plain, mirrored = data['inputs'][0][0], data['inputs'][1][0]
    assert plain.shape[0] == (5 if kind == 'binary' else 10)
    assert torch.equal(mirrored, plain.flip(-1))  # every frame of the clip flipped alike
    assert [s.metainfo['flip'] for s in (data['data_samples'][0][0], data['data_samples'][1][0])] == [False, True]
    assert torch.equal(data['audio'][0][0], data['audio'][1][0])


def test_tta_averages_the_logits_of_the_clip_and_its_mirror(case):
    """The real (not flip-equivariant) model: TTA = mean of the plain logits and the mirrored clip's logits
    mirrored back; binary: ``seg_logits`` is that mean and the mask its threshold; semantic: its argmax."""
    kind, model, tta, clips = case
    clip = clips[0]
    expected = (_logits(model, clip, False) + _logits(model, clip, True)) / 2  # (T, K, H, W)
    with torch.no_grad():
        out = tta.test_step(_views(model, [clip]))[0]
        plain = _plain(model, [clip])[0]
    assert out.pred_sem_seg.data.shape == plain.pred_sem_seg.data.shape
    if kind == 'binary':
        torch.testing.assert_close(out.seg_logits.data, expected[:, 0], rtol=1e-5, atol=1e-5)
        assert torch.equal(out.pred_sem_seg.data, (out.seg_logits.data > model.logit_threshold).long())
        assert not torch.allclose(out.seg_logits.data, plain.seg_logits.data)  # the mirror view changed something
    else:
        pred = expected.argmax(1) * torch.tensor(clip['frame_valid'])[:, None, None]
        assert (out.pred_sem_seg.data == pred).float().mean() > 0.999  # ties aside
        assert len(pred.unique()) > 5 and not torch.equal(out.pred_sem_seg.data, plain.pred_sem_seg.data)
    assert 'gt_sem_seg' in out and out.metainfo['flip'] is False and out.metainfo['video_id'] == clip['video_id']


def test_flip_equivariant_model_gives_its_plain_output(case, monkeypatch):
    """A model whose logits are a per-pixel function of the frames (and the audio) commutes with flips, so its TTA
    output equals its plain output exactly, batch of 2 clips included."""
    kind, model, tta, clips = case
    k = model.decode_head.num_classes if kind == 'semantic' else 1
    weight = torch.randn(k, 3, 1, 1)

    def run_core(inputs, audio, frame_valid, all_stages):
        logits = torch.nn.functional.conv2d(inputs.flatten(0, 1), weight)  # (N*T, K, H, W)
        return None, logits + audio.flatten(0, 1).mean((1, 2, 3))[:, None, None, None]

    monkeypatch.setattr(model, 'run_core', run_core)
    with torch.no_grad():
        out = tta.test_step(_views(model, clips[:2]))
        plain = _plain(model, clips[:2])
    for a, b in zip(out, plain):
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)
        if kind == 'binary':
            assert torch.equal(a.seg_logits.data, b.seg_logits.data)


def test_views_must_share_a_size_and_keep_an_unflipped_one():
    tta = AVSTTAModel.__new__(AVSTTAModel)
    with pytest.raises(ValueError, match='views of one size'):
        tta.merge_preds([torch.zeros(1, 5, 1, 64, 64), torch.zeros(1, 5, 1, 32, 32)])


def test_every_view_flipped_is_refused(case):
    kind, model, tta, clips = case
    data = _views(model, clips[:1])
    data = {key: value[1:] for key, value in data.items()}  # the mirrored view only
    with pytest.raises(ValueError, match='one unflipped view'):
        tta.test_step(data)


ALL_CONFIGS = sorted(c for c in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True) if '_base_' not in c)


@pytest.mark.parametrize('config', ALL_CONFIGS, ids=[osp.relpath(c, ROOT) for c in ALL_CONFIGS])
def test_every_config_defines_the_flip_tta(config):
    """``--tta`` works on every config: the model wrapper and a pipeline of the plain and the mirrored clip."""
    cfg = Config.fromfile(config)
    assert cfg.tta_model.type == 'AVSTTAModel'
    assert cfg.tta_pipeline[:-1] == cfg.test_pipeline[:-1]  # the test pipeline's loading, resize, annotations
    tta = cfg.tta_pipeline[-1]
    assert tta.type == 'TestTimeAug'
    flips = [view.transforms[0].prob for view in tta.transforms[0]]
    assert flips == [0.0, 1.0] and tta.transforms[-1] == [dict(type='PackAVSInputs')]
