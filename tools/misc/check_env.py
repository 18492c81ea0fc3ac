"""Self-check of the installed stack: prints its versions and fails loudly when something CCFormer needs is broken.

Prints the environment as mmseg's ``collect_env`` reports it (mmengine's: Python, CUDA / GPUs, GCC, PyTorch,
TorchVision, OpenCV, MMEngine; and MMSegmentation) and the versions of the other packages the project uses
(``not installed`` for the optional ones that are absent). Then checks that mmcv's compiled extension
(``mmcv._ext``) is importable, that a ``MultiScaleDeformableAttention`` forward and backward run (on CPU, and on
CUDA with the compiled kernel when a GPU is present, where it must match the PyTorch path), that mmseg/mmdet import
(their mmcv version asserts), and that ``projects.ccformer`` registers its modules.

Usage: ``python tools/misc/check_env.py [--quiet] [--verbose]``; exit status 1 with a message on failure.
"""

import argparse
import importlib.metadata as metadata
import os.path as osp
import subprocess
import sys
import traceback
from collections import OrderedDict
from typing import Dict

# distributions whose versions are printed next to collect_env's (the optional ones last)
PACKAGES = (
    'mmcv',
    'mmdet',
    'ccformer',
    'timm',
    'numpy',
    'av',
    'soundfile',
    'resampy',
    'onnx',
    'onnxruntime',
    'tensorboard',
    'gradio',
)


def check_ext() -> str:
    import mmcv
    import mmcv._ext as ext  # noqa: F401

    if not hasattr(ext, 'ms_deform_attn_forward'):
        raise RuntimeError('mmcv._ext has no ms_deform_attn_forward: mmcv was built without ops')
    return f'mmcv {mmcv.__version__} with compiled ops'


def check_msda(device: str) -> str:
    import torch
    from mmcv.ops import MultiScaleDeformableAttention
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=2, num_points=2, batch_first=True).to(
        device
    )
    shapes = torch.tensor([[8, 8], [4, 4]], device=device)
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    num_value = int(shapes.prod(1).sum())
    query = torch.randn(2, 10, 32, device=device, requires_grad=True)
    value = torch.randn(2, num_value, 32, device=device)
    ref = torch.rand(2, 10, 2, 2, device=device)
    out = attn(query, value=value, reference_points=ref, spatial_shapes=shapes, level_start_index=start)
    out.sum().backward()
    if out.shape != (2, 10, 32) or not torch.isfinite(out).all() or query.grad is None:
        raise RuntimeError(f'MultiScaleDeformableAttention forward/backward on {device} gave a bad result')
    if device == 'cuda':  # the compiled kernel must agree with the PyTorch path
        from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction

        v = torch.randn(2, num_value, 4, 8, device=device)
        loc = torch.rand(2, 10, 4, 2, 2, 2, device=device)
        w = torch.rand(2, 10, 4, 2, 2, device=device).softmax(-1)
        a = MultiScaleDeformableAttnFunction.apply(v, shapes, start, loc, w, 64)
        b = multi_scale_deformable_attn_pytorch(v, shapes, loc, w)
        err = float((a - b).abs().max())
        if err > 1e-4:
            raise RuntimeError(f'compiled MSDA differs from the PyTorch path by {err}')
    return f'MultiScaleDeformableAttention forward+backward OK on {device}'


def check_openmmlab() -> str:
    import mmdet
    import mmengine
    import mmseg
    from mmseg.registry import MODELS

    import projects.ccformer  # noqa: F401

    if MODELS.get('CCFormer') is None:
        raise RuntimeError('projects.ccformer imported but CCFormer is not registered in mmseg MODELS')
    return f'mmengine {mmengine.__version__}, mmseg {mmseg.__version__}, mmdet {mmdet.__version__}, CCFormer registered'


def collect_versions(verbose: bool = False) -> Dict[str, str]:
    """mmseg's ``collect_env`` (mmengine's when mmseg does not import) and the versions of :data:`PACKAGES`.

    ``PyTorch compiling details`` (torch's long build configuration) only with ``verbose``.
    """
    try:
        import mmseg
        from mmseg.utils import collect_env
    except Exception as exc:  # noqa: BLE001  (a broken mmseg still gets its versions printed)
        from mmengine.utils.dl_utils import collect_env

        env = OrderedDict(collect_env())
        env['MMSegmentation'] = f'import failed: {exc}'
    else:
        env = OrderedDict(collect_env())
        env['MMSegmentation'] = mmseg.__version__  # collect_env appends the git hash of the working directory
    if not verbose:
        env.pop('PyTorch compiling details', None)
    for name in PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = 'not installed'
    commit = _git_commit()
    if commit and env['ccformer'] != 'not installed':
        env['ccformer'] += f' (git {commit})'
    return env


def _git_commit() -> str:
    """Short commit of this checkout ('' outside a git work tree)."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    try:
        out = subprocess.run(['git', '-C', root, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True)
    except OSError:
        return ''
    return out.stdout.strip() if out.returncode == 0 else ''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quiet', action='store_true', help='print nothing when every check passes')
    parser.add_argument('--verbose', action='store_true', help='also print how PyTorch was built')
    args = parser.parse_args()
    import torch

    if not args.quiet:
        try:
            versions = collect_versions(args.verbose)
        except Exception as exc:  # noqa: BLE001  (no mmengine: the checks below say what is missing)
            versions = {'versions': f'cannot be collected ({exc})'}
        for key, value in versions.items():
            print(f'{key}: {value}')
        print()

    checks = [check_ext, lambda: check_msda('cpu'), check_openmmlab]
    if torch.cuda.is_available():
        checks.insert(2, lambda: check_msda('cuda'))
    for check in checks:
        try:
            msg = check()
        except Exception as exc:  # noqa: BLE001  (report any failure with its cause)
            if not args.quiet:
                traceback.print_exc()
                print(
                    f'\nSELF-CHECK FAILED: {exc}\n'
                    'Fix: re-run `bash tools/setup_env.sh` (it rebuilds mmcv with ops if they are missing); '
                    'on a GPU machine make sure nvcc matches torch.version.cuda.',
                    file=sys.stderr,
                )
            return 1
        if not args.quiet:
            print(f'[check] {msg}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
