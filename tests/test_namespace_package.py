"""``projects`` is a namespace package: installing CCFormer owns ``projects.ccformer`` only.

Another project's ``projects.<name>`` on ``sys.path`` stays importable next to ``projects.ccformer``, whichever
comes first (e.g. running from this repository's root, the mission's layout).
"""

import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))


@pytest.mark.parametrize('ours_first', [True, False])
def test_other_projects_package_stays_importable(tmp_path, ours_first):
    other = tmp_path / 'other_repo'
    (other / 'projects' / 'other').mkdir(parents=True)
    (other / 'projects' / 'other' / '__init__.py').write_text("NAME = 'other'\n")
    paths = [ROOT, str(other)] if ours_first else [str(other), ROOT]
    # -S: no site-packages, so only these two trees provide ``projects`` (find_spec does not import ccformer)
    code = (
        f'import sys; sys.path[:0] = {paths!r}\n'
        'import importlib.util, projects.other\n'
        'print(projects.other.NAME)\n'
        "print(importlib.util.find_spec('projects.ccformer').origin)\n"
    )
    out = subprocess.run(
        [sys.executable, '-S', '-c', code],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=''),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    name, origin = out.stdout.split()
    assert name == 'other'
    assert origin == osp.join(ROOT, 'projects', 'ccformer', '__init__.py')


def test_setup_installs_ccformer_subpackages_only():
    from setuptools.dist import Distribution

    assert not osp.exists(osp.join(ROOT, 'projects', '__init__.py'))
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        from distutils.core import run_setup

        dist = run_setup('setup.py', stop_after='init')
    finally:
        os.chdir(cwd)
    assert isinstance(dist, Distribution)
    packages = set(dist.packages)
    on_disk = {
        osp.relpath(d, ROOT).replace(os.sep, '.')
        for d, _, files in os.walk(osp.join(ROOT, 'projects'))
        if '__init__.py' in files
    }
    assert 'projects' not in packages and 'projects.ccformer.models.necks' in packages
    assert packages == on_disk
