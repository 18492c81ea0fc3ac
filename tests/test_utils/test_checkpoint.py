"""projects/ccformer/utils/checkpoint.py: the checkpoint readers the backbones use (the refusal of unsafe and corrupt
files is tested in tests/test_engine/test_safe_checkpoint.py through the names engine/safe_checkpoint.py re-exports)."""

import os.path as osp

import pytest
import torch

from projects.ccformer.engine import safe_checkpoint
from projects.ccformer.utils import checkpoint


def test_check_pretrained_file_names_the_file_the_module_and_the_url(tmp_path):
    missing = str(tmp_path / 'vggish.pth')
    with pytest.raises(FileNotFoundError, match=r'VGGish: pretrained checkpoint ".*vggish.pth" not found') as err:
        checkpoint.check_pretrained_file(missing, 'VGGish', 'https://example.org/vggish.pth')
    assert 'https://example.org/vggish.pth' in str(err.value) and 'init_cfg=None' in str(err.value)
    checkpoint.check_pretrained_file('https://example.org/remote.pth', 'VGGish')  # left to mmengine's loaders
    (tmp_path / 'here.pth').write_bytes(b'')
    checkpoint.check_pretrained_file(str(tmp_path / 'here.pth'), 'VGGish')


def test_the_backbones_read_with_the_utils_readers():
    from projects.ccformer.models.backbones import timm_backbone, vggish

    for module in (vggish, timm_backbone):
        assert module.load_checkpoint_file is checkpoint.load_checkpoint_file
        assert module.check_pretrained_file is checkpoint.check_pretrained_file
    # the names the tools import from engine/safe_checkpoint.py are the same objects
    for name in ('load_checkpoint_file', 'checkpoint_state_dict', 'trust_checkpoint', 'UnsafeCheckpointError'):
        assert getattr(safe_checkpoint, name) is getattr(checkpoint, name)


def test_load_checkpoint_file_reads_a_state_dict(tmp_path):
    path = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'module.w': torch.ones(2)}}, path)
    state = checkpoint.checkpoint_state_dict(checkpoint.load_checkpoint_file(str(path)), osp.basename(path))
    assert list(state) == ['w'] and torch.equal(state['w'], torch.ones(2))
