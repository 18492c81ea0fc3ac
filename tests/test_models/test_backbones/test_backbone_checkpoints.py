"""Visual backbones from the ecosystem load the official ImageNet key layouts through init_cfg.

State dicts with the official key names are made here from randomly initialised reference models (timm PVT-v2 /
torchvision ResNet-50) and saved; the config's ``init_cfg`` loads them and every parameter must arrive.
"""

import re

import pytest
import torch
import torchvision
from mmengine.config import ConfigDict
from mmseg.registry import MODELS

from projects.ccformer.models.backbones import TimmPyramidBackbone

# PVT-v2-b5 depths with tiny widths: the official key set of b5, built in a second on CPU
PVT_KW = dict(depths=(3, 6, 40, 3), embed_dims=(16, 32, 64, 128), num_heads=(1, 2, 4, 8), mlp_ratios=(4, 4, 4, 4))


def timm_to_official_pvt_v2(sd: dict) -> dict:
    """Rename timm PVT-v2 keys to the layout of the whai362 release (pvt_v2_b5.pth)."""
    out = {}
    for k, v in sd.items():
        k = k.replace('.mlp.dwconv.', '.mlp.dwconv.dwconv.')
        k = re.sub(r'^patch_embed\.', 'patch_embed1.', k)
        k = re.sub(r'^stages\.(\d+)\.downsample\.', lambda m: f'patch_embed{int(m.group(1)) + 1}.', k)
        k = re.sub(r'^stages\.(\d+)\.blocks\.(\d+)\.', lambda m: f'block{int(m.group(1)) + 1}.{m.group(2)}.', k)
        k = re.sub(r'^stages\.(\d+)\.norm\.', lambda m: f'norm{int(m.group(1)) + 1}.', k)
        out[k] = v
    return out


@pytest.fixture(scope='module')
def official_pvt(tmp_path_factory):
    import timm

    torch.manual_seed(0)
    ref = timm.create_model('pvt_v2_b5', pretrained=False, num_classes=10, **PVT_KW).eval()
    sd = timm_to_official_pvt_v2(ref.state_dict())
    assert 'block3.39.mlp.dwconv.dwconv.weight' in sd and 'patch_embed4.proj.weight' in sd and 'head.weight' in sd
    path = tmp_path_factory.mktemp('pvt') / 'pvt_v2_b5.pth'
    torch.save(sd, path)
    return ref, sd, str(path)


def test_timm_pvt_v2_loads_official_layout(official_pvt):
    ref, sd, path = official_pvt
    bb = MODELS.build(
        dict(
            type='TimmPyramidBackbone',
            model_name='pvt_v2_b5',
            init_cfg=dict(type='Pretrained', checkpoint=path),
            **PVT_KW,
        )
    ).eval()
    bb.init_weights()
    ref_sd = ref.state_dict()
    for k, v in bb.model.state_dict().items():
        assert torch.equal(v, ref_sd[k]), k
    x = torch.randn(2, 3, 64, 64)
    outs = bb(x)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4), (2, 128, 2, 2)]
    assert bb.channels == [16, 32, 64, 128] and bb.strides == [4, 8, 16, 32]
    with torch.no_grad():
        ref_outs = ref.forward_intermediates(x, intermediates_only=True)
    for o, r in zip(outs, ref_outs):
        torch.testing.assert_close(o, r)


def test_mmdet_pvt_v2_loads_official_layout(official_pvt):
    """The same official file through mmdet's PyramidVisionTransformerV2 (pvt_convert): every key, same outputs."""
    from mmdet.models.backbones.pvt import pvt_convert

    ref, sd, path = official_pvt
    bb = MODELS.build(
        ConfigDict(
            type='mmdet.PyramidVisionTransformerV2',
            embed_dims=16,
            num_layers=[3, 6, 40, 3],
            num_heads=[1, 2, 4, 8],
            mlp_ratios=[4, 4, 4, 4],
            init_cfg=dict(type='Pretrained', checkpoint=path),
        )
    ).eval()
    bb.init_weights()
    converted = pvt_convert(sd)
    for k, v in bb.state_dict().items():
        assert k in converted and torch.equal(v, converted[k].view_as(v)), k
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for o, r in zip(bb(x), ref.forward_intermediates(x, intermediates_only=True)):
            torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-4)


def test_mmdet_resnet50_loads_torchvision_layout(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet50(weights=None).eval()
    path = tmp_path / 'resnet50-0676ba61.pth'
    torch.save(ref.state_dict(), path)  # the torchvision file is a plain state dict
    bb = MODELS.build(
        dict(
            type='mmdet.ResNet',
            depth=50,
            out_indices=(0, 1, 2, 3),
            style='pytorch',
            init_cfg=dict(type='Pretrained', checkpoint=str(path)),
        )
    )
    bb.init_weights()
    bb.eval()  # mmdet's ResNet.train() returns None: no chaining
    ref_sd = ref.state_dict()
    for k, v in bb.state_dict().items():
        assert torch.equal(v, ref_sd[k]), k  # every parameter and BN buffer mapped
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        refs = []
        for layer in (ref.layer1, ref.layer2, ref.layer3, ref.layer4):
            y = layer(y)
            refs.append(y)
        for o, r in zip(bb(x), refs):
            torch.testing.assert_close(o, r)


def test_any_timm_backbone_through_config():
    bb = MODELS.build(dict(type='TimmPyramidBackbone', model_name='resnet18', out_indices=(1, 2, 3, 4)))
    outs = bb(torch.randn(2, 3, 64, 64))
    assert bb.channels == [64, 128, 256, 512]
    assert [tuple(o.shape) for o in outs] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]


def test_timm_backbone_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='pvt_v2_b5.pth'):
        TimmPyramidBackbone(
            'pvt_v2_b0', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'pvt_v2_b5.pth'))
        ).init_weights()
    path = tmp_path / 'other.pth'
    torch.save({'foo.weight': torch.zeros(1)}, path)
    with pytest.raises(KeyError, match='unloaded'):
        TimmPyramidBackbone(
            'resnet18', out_indices=(1, 2, 3, 4), init_cfg=dict(type='Pretrained', checkpoint=str(path))
        ).init_weights()
