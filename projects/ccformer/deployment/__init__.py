"""Deployment: the model's tensor core exported to ONNX and run with ONNX Runtime (``docs/deployment.md``).

* :class:`ORTSegmentor` (``ort_segmentor``): an exported file with numpy pre- and post-processing; needs only
  numpy, OpenCV and onnxruntime.
* ``onnx_export``: :func:`~projects.ccformer.deployment.onnx_export.export_onnx` and
  :func:`~projects.ccformer.deployment.onnx_export.verify_onnx` (need torch, onnx and the model stack; imported
  from the submodule, not here).
"""

from .ort_segmentor import ORTSegmentor

__all__ = ['ORTSegmentor']
