"""Shared pytest fixtures: tiny toy AVSBench datasets (one per layout), generated once per session, and a tiny full
file system.

``toy_s4_root`` / ``toy_ms3_root`` / ``toy_avss_root`` are dataset roots in the official layouts
(``projects.ccformer.datasets.toy``). Treat them as read-only: tests that break files make their
own with ``make_toy_root``. ``tiny_fs`` is a 64 KiB tmpfs (skipped where it cannot be mounted).
"""

import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

#: Small sizes keep the generation well under a second per layout.
TOY_NUM_VIDEOS = {'train': 3, 'val': 2, 'test': 2}
TOY_AVSS_NUM_VIDEOS = {'train': 2, 'val': 1, 'test': 1}
TOY_IMG_SIZE = 64
TOY_AVSS_IMG_SIZE = (80, 60)  # (w, h): not square, like the original-resolution AVSS frames


def _generate(root: str, layout: str) -> str:
    from projects.ccformer.datasets.toy import generate_toy_avsbench

    if layout == 'avss':
        generate_toy_avsbench(root, 'avss', TOY_AVSS_NUM_VIDEOS, seed=0, img_size=TOY_AVSS_IMG_SIZE)
    else:
        generate_toy_avsbench(root, layout, TOY_NUM_VIDEOS, seed=0, img_size=TOY_IMG_SIZE)
    return root


@pytest.fixture(scope='session')
def toy_s4_root(tmp_path_factory) -> str:
    """Toy S4 root (``s4_meta_data.csv``, ``s4_data/...``), 3/2/2 videos, 64x64 frames."""
    return _generate(str(tmp_path_factory.mktemp('toy') / 'Single-source'), 's4')


@pytest.fixture(scope='session')
def toy_ms3_root(tmp_path_factory) -> str:
    """Toy MS3 root (``ms3_meta_data.csv``, ``ms3_data/...``), 3/2/2 videos, 64x64 frames."""
    return _generate(str(tmp_path_factory.mktemp('toy') / 'Multi-sources'), 'ms3')


@pytest.fixture(scope='session')
def toy_avss_root(tmp_path_factory) -> str:
    """Toy AVSS root (``metadata.csv``, ``label2idx.json``, ``v1s|v1m|v2/<uid>/...``), 80x60."""
    return _generate(str(tmp_path_factory.mktemp('toy') / 'AVSS'), 'avss')


@pytest.fixture
def make_toy_root(tmp_path):
    """``make_toy_root(layout, num_videos=None, **kw)`` -> a private, writable tiny toy root.

    For tests that break files. Default: one video per split (AVSS: per subset, v1m and v2 only),
    32x32 frames (AVSS 40x30), so it has few files (file creation/removal is slow on some disks).
    """
    count = [0]

    def _make(layout: str, num_videos=None, **kw) -> str:
        from projects.ccformer.datasets.toy import generate_toy_avsbench

        count[0] += 1
        root = str(tmp_path / f'{count[0]}_{layout}')
        kw.setdefault('img_size', (40, 30) if layout == 'avss' else 32)
        kw.setdefault('seed', 0)
        if layout == 'avss':
            kw.setdefault('subsets', ('v1m', 'v2'))
        generate_toy_avsbench(root, layout, num_videos or {'train': 1, 'val': 1, 'test': 1}, **kw)
        return root

    return _make


@pytest.fixture
def tiny_fs():
    """A 64 KiB tmpfs mounted on a temporary folder, to fill up (needs root and mount rights: skipped otherwise)."""
    if shutil.which('mount') is None or not hasattr(os, 'geteuid') or os.geteuid() != 0:
        pytest.skip('a tiny file system needs root and mount(8): not available here')
    mnt = tempfile.mkdtemp(prefix='ccformer-tinyfs-')
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], capture_output=True, text=True)
    if proc.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f'cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})')
    try:
        yield mnt
    finally:
        if subprocess.run(['umount', mnt], capture_output=True).returncode != 0:
            subprocess.run(['umount', '-l', mnt], check=False)  # a file still open: detach it lazily
        os.rmdir(mnt)
