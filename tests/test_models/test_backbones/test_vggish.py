"""VGGish: shapes, freezing, and loading the official torchvggish key layout through init_cfg."""

import pytest
import torch
import torch.nn.functional as F

from projects.ccformer.models.backbones import VGGish

CONV_KEYS = {0: (64, 1), 3: (128, 64), 6: (256, 128), 8: (256, 256), 11: (512, 256), 13: (512, 512)}
FC_KEYS = {0: (4096, 12288), 2: (4096, 4096), 4: (128, 4096)}


def official_state_dict(seed: int = 0) -> dict:
    """A state dict with the exact key names and shapes of vggish-10086976.pth (random values)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (o, c) in CONV_KEYS.items():
        sd[f'features.{i}.weight'] = torch.randn(o, c, 3, 3, generator=g) * (2.0 / (9 * c)) ** 0.5
        sd[f'features.{i}.bias'] = torch.randn(o, generator=g) * 0.01
    for i, (o, c) in FC_KEYS.items():
        sd[f'embeddings.{i}.weight'] = torch.randn(o, c, generator=g) * (2.0 / c) ** 0.5
        sd[f'embeddings.{i}.bias'] = torch.randn(o, generator=g) * 0.01
    return sd


def reference_vggish(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """VGGish as avsbench.md section 2.5 states it, written with functional ops."""
    for i in (0, 3, 6, 8, 11, 13):
        x = F.relu(F.conv2d(x, sd[f'features.{i}.weight'], sd[f'features.{i}.bias'], padding=1))
        if i in (0, 3, 8, 13):
            x = F.max_pool2d(x, 2)
    assert x.shape[1:] == (512, 6, 4)
    x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF order (N, H, W, C)
    for i in (0, 2, 4):
        x = F.relu(F.linear(x, sd[f'embeddings.{i}.weight'], sd[f'embeddings.{i}.bias']))
    return x


TINY = dict(channels=(8, 8, 16, 16), fc_dims=(32, 32))  # same structure, narrow: fast


def test_vggish_shape_and_frozen():
    m = VGGish(**TINY)
    assert all(not p.requires_grad for p in m.parameters())
    m.train()
    assert not m.training  # frozen -> stays in eval mode
    y = m(torch.randn(3, 1, 96, 64))
    assert y.shape == (3, 128) and not y.requires_grad and (y >= 0).all()
    with pytest.raises(ValueError, match=r'\(N, 1, 96, 64\)'):
        m(torch.randn(2, 96, 64))


def test_vggish_trainable_when_not_frozen():
    m = VGGish(frozen=False, **TINY)
    m.train()
    assert m.training and all(p.requires_grad for p in m.parameters())
    m(torch.randn(1, 1, 96, 64)).sum().backward()
    assert m.features[0].weight.grad is not None


def test_vggish_loads_official_layout(tmp_path):
    sd = official_state_dict()
    path = tmp_path / 'vggish-10086976.pth'
    torch.save(sd, path)  # plain state dict, like the official file
    m = VGGish(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    assert set(m.state_dict()) == set(sd)  # exactly the official key set
    m.init_weights()
    for k, v in m.state_dict().items():
        assert torch.equal(v, sd[k]), k  # every key mapped
    x = torch.randn(2, 1, 96, 64)
    torch.testing.assert_close(m(x), reference_vggish(sd, x), rtol=1e-4, atol=1e-5)


def test_vggish_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match='vggish-10086976.pth.*Download it from https://github.com/harritaylor'):
        VGGish(
            init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'vggish-10086976.pth')), **TINY
        ).init_weights()
    sd = VGGish(**TINY).state_dict()
    sd['fc.weight'] = sd.pop('embeddings.4.weight')
    path = tmp_path / 'wrong.pth'
    torch.save(sd, path)
    with pytest.raises(KeyError, match='embeddings.4.weight'):
        VGGish(init_cfg=dict(type='Pretrained', checkpoint=str(path)), **TINY).init_weights()


def test_vggish_stats_branch_adds_the_spectral_statistics():
    """``stats_branch``: the pre-activation embedding plus a projection of each mel bin's mean and std over time."""
    torch.manual_seed(0)
    m = VGGish(frozen=False, stats_branch=True, **TINY)
    x = torch.randn(4, 1, 96, 64)
    plain = VGGish(frozen=False, **TINY)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith('stats.')})
    pre = plain.embeddings[:-1](plain.features(x).permute(0, 2, 3, 1).flatten(1))
    stats = torch.cat([x[:, 0].mean(1), x[:, 0].std(1)], 1)
    torch.testing.assert_close(m(x), F.relu(pre + F.linear(stats, m.stats.weight, m.stats.bias)))
    assert set(plain.state_dict()) == set(m.state_dict()) - {'stats.weight', 'stats.bias'}
    m(x).sum().backward()
    assert m.stats.weight.grad is not None


def test_vggish_stats_branch_needs_training():
    with pytest.raises(ValueError, match='frozen=False'):
        VGGish(stats_branch=True, **TINY)
