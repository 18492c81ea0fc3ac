"""tools/misc/check_env.py prints the versions of the stack (mmseg's collect_env and the project's packages)."""

import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_check_env_prints_versions():
    proc = subprocess.run(
        [sys.executable, 'tools/misc/check_env.py'], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split(': ', 1) for line in proc.stdout.splitlines() if ': ' in line and not line.startswith('['))
    import mmengine
    import mmseg
    import torch

    assert lines['PyTorch'] == torch.__version__ and lines['MMEngine'] == mmengine.__version__
    assert lines['MMSegmentation'] == mmseg.__version__  # without the working directory's git hash
    for key in ('Python', 'CUDA available', 'GCC', 'TorchVision', 'OpenCV', 'mmcv', 'mmdet', 'ccformer', 'onnxruntime'):
        assert lines.get(key) and lines[key] != 'not installed', key
    assert 'tensorboard' in lines and 'gradio' in lines  # optional: a version or 'not installed'
    assert 'PyTorch compiling details' not in proc.stdout
    assert '[check] MultiScaleDeformableAttention forward+backward OK on cpu' in proc.stdout
