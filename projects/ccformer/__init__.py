"""CCFormer (Complementary and Contrastive Transformer) for audio-visual segmentation.

Importing this package registers every component (datasets, transforms, metrics, models, hooks) in the
OpenMMLab registries, so configs only need
``custom_imports = dict(imports=['projects.ccformer'], allow_failed_imports=False)``.
"""
from . import datasets, engine, evaluation, models  # noqa: F401  (registration side effects)

__version__ = '0.1.0'
