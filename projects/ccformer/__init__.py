"""CCFormer (Complementary and Contrastive Transformer) for audio-visual segmentation.

Importing this package registers every component (datasets, transforms, metrics, models, hooks) in the
OpenMMLab registries, so configs only need
``custom_imports = dict(imports=['projects.ccformer'], allow_failed_imports=False)``.

Without the OpenMMLab stack (mmengine, mmcv, mmseg not installed: an ONNX Runtime deployment, see
``docs/deployment.md``) nothing is registered, ``OPENMMLAB_MISSING`` names the first missing package, and the parts
that need none of it still import: ``deployment`` (ONNX Runtime segmentor), ``datasets.audio``,
``datasets.palette``, ``datasets.toy`` and ``apis`` (which needs torch and mmengine, as ``datasets.video``).
"""

from importlib import import_module
from typing import Optional

__version__ = '0.1.0'


def _missing_openmmlab() -> Optional[str]:
    """The first of mmengine, mmcv, mmseg that is not installed, or None. One that is installed but fails to
    import raises (a broken install must not pass for a deployment-only one)."""
    for name in ('mmengine', 'mmcv', 'mmseg'):
        try:
            import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                return name
            raise
    return None


OPENMMLAB_MISSING = _missing_openmmlab()
if OPENMMLAB_MISSING is None:
    from . import datasets, engine, evaluation, models  # noqa: F401,E402  (registration side effects)
