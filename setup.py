"""Install the CCFormer OpenMMLab plugin (``projects.ccformer``).

The heavy stack (torch, mmcv with compiled ops, mmseg, mmdet) is installed by ``tools/setup_env.sh``
(``make test`` / ``make demo`` call it), because mmcv has to be built from source against the installed torch.
``pip install -e .`` then only adds this project, so that configs reach it through
``custom_imports = dict(imports=['projects.ccformer'])`` from any working directory. ``projects`` is a namespace
package (no ``projects/__init__.py``): the install owns ``projects.ccformer`` only, and another project's
``projects.<name>`` stays importable next to it.
"""

import re
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).parent


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt`` without comments and ``-r`` includes."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip() and not ln.startswith('-r')]


def read_version() -> str:
    text = (HERE / 'projects' / 'ccformer' / '__init__.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


setup(
    name='ccformer',
    version=read_version(),
    description='CCFormer (Complementary and Contrastive Transformer) for audio-visual segmentation, '
    'an OpenMMLab (mmseg 1.x) plugin',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_namespace_packages(
        include=['projects.ccformer', 'projects.ccformer.*'], exclude=['projects.ccformer.datasets.assets*']
    ),
    # recordings and pictures of the ``recorded`` data family (licences in assets/recorded/licenses)
    package_data={'projects.ccformer.datasets': ['assets/**/*']},
    include_package_data=True,
    install_requires=read_requirements('runtime'),
    extras_require={
        'tests': read_requirements('tests'),
        'mim': read_requirements('mminstall'),
        'deploy': read_requirements('deploy'),
        'tensorboard': read_requirements('optional'),
        'demo': read_requirements('demo'),
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
