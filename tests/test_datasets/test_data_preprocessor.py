"""AVSDataPreprocessor: stacking, BGR->RGB, normalisation, padding, padded-frame zeroing."""

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import projects.ccformer  # noqa: F401
from projects.ccformer.models.data_preprocessor import AVSDataPreprocessor

MEAN = torch.tensor([123.675, 116.28, 103.53])
STD = torch.tensor([58.395, 57.12, 57.375])


def _sample(t, h, w, frame_valid=None):
    s = SegDataSample()
    s.gt_sem_seg = PixelData(data=torch.ones(t, h, w, dtype=torch.long))
    s.set_metainfo(dict(frame_valid=frame_valid or [1] * t, img_shape=(h, w)))
    return s


def _data(shapes, valid=None):
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (t, 3, h, w), generator=g, dtype=torch.uint8) for t, h, w in shapes]
    audio = [torch.randn(t, 1, 96, 64, generator=g) for t, _, _ in shapes]
    samples = [_sample(t, h, w, None if valid is None else valid[i]) for i, (t, h, w) in enumerate(shapes)]
    return dict(inputs=inputs, audio=audio, data_samples=samples)


def test_registered_and_normalises():
    pre = MODELS.build(dict(type='AVSDataPreprocessor'))
    data = _data([(3, 8, 10), (3, 8, 10)])
    raw = [x.clone() for x in data['inputs']]
    out = pre(data, training=True)
    assert out['inputs'].shape == (2, 3, 3, 8, 10) and out['inputs'].dtype == torch.float32
    pix = raw[1][2, :, 4, 5].float()  # BGR
    expected = (pix.flip(0) - MEAN) / STD
    torch.testing.assert_close(out['inputs'][1, 2, :, 4, 5], expected)
    assert out['audio'].shape == (2, 3, 1, 96, 64)
    torch.testing.assert_close(out['audio'][1], data['audio'][1])


def test_padding_to_common_size_and_divisor():
    pre = AVSDataPreprocessor(size_divisor=8)
    out = pre(_data([(2, 5, 7), (2, 9, 6)]), training=True)
    assert out['inputs'].shape == (2, 2, 3, 16, 8)
    assert (out['inputs'][0, :, :, 5:, :] == 0).all() and (out['inputs'][0, :, :, :, 7:] == 0).all()
    gt0 = out['data_samples'][0].gt_sem_seg.data
    assert gt0.shape == (2, 16, 8)
    assert (gt0[:, :5, :7] == 1).all() and (gt0[:, 5:] == 255).all() and (gt0[:, :, 7:] == 255).all()
    m = out['data_samples'][0].metainfo
    assert m['img_shape'] == (5, 7) and m['pad_shape'] == (16, 8)
    assert m['batch_input_shape'] == (16, 8) and list(m['padding_size']) == [0, 1, 0, 11]
    fixed = AVSDataPreprocessor(size=(12, 12))(_data([(2, 5, 7)]), training=False)
    assert fixed['inputs'].shape == (1, 2, 3, 12, 12)


def test_padded_frames_are_zero():
    pre = AVSDataPreprocessor()
    out = pre(_data([(4, 6, 6), (4, 6, 6)], valid=[[1, 1, 0, 0], [1, 1, 1, 1]]))
    assert (out['inputs'][0, 2:] == 0).all()
    assert (out['inputs'][0, :2] != 0).any() and (out['inputs'][1] != 0).any()


def test_rgb_option_and_errors():
    data = _data([(1, 4, 4)])
    raw = data['inputs'][0].clone()
    out = AVSDataPreprocessor(bgr_to_rgb=False, mean=(0, 0, 0), std=(1, 1, 1))(data)
    torch.testing.assert_close(out['inputs'][0], raw.float())
    with pytest.raises(ValueError, match=r'\(T, 3, H, W\)'):
        AVSDataPreprocessor()(dict(inputs=[torch.zeros(3, 4, 4)], data_samples=None))
    with pytest.raises(ValueError, match='different lengths'):
        AVSDataPreprocessor()(_data([(2, 4, 4), (3, 4, 4)]))
    with pytest.raises(ValueError, match='size'):
        AVSDataPreprocessor(size=(8, 8), size_divisor=4)


def test_inference_without_samples():
    data = _data([(2, 4, 4)])
    data.pop('data_samples')
    out = AVSDataPreprocessor()(data)
    assert out['inputs'].shape == (1, 2, 3, 4, 4) and out['data_samples'] is None
