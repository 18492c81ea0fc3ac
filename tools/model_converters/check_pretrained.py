"""Check that released pretrained weights load into CCFormer as they are (no conversion needed).

    python tools/model_converters/check_pretrained.py --vggish pretrained/vggish-10086976.pth
    python tools/model_converters/check_pretrained.py --config configs/ccformer_pvt_s4.py \\
        --backbone pretrained/pvt_v2_b5.pth --vggish pretrained/vggish-10086976.pth

Why a checker and not a converter:

* VGGish: our ``VGGish`` (``projects/ccformer/models/backbones/vggish.py``) uses the key layout of the official
  torchvggish port ``vggish-10086976.pth`` (``features.{0,3,6,8,11,13}.*``, ``embeddings.{0,2,4}.*``), so the file
  loads strictly as it is.
* PVT-v2: the original release (whai362 ``pvt_v2_b5.pth``: ``patch_embed1.*``, ``block1.0.*``) is remapped when
  loaded: mmdet's ``PyramidVisionTransformerV2`` runs ``pvt_convert`` (``convert_weights=True``) and our
  ``TimmPyramidBackbone`` runs timm's ``checkpoint_filter_fn``. Both raise if a tensor is left unloaded.

The script builds each module with ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` and calls
``init_weights()``; it exits non-zero with the loader's message when a file does not fit. Files are read without
executing code (``projects/ccformer/engine/safe_checkpoint.py``); one that needs full unpickling is refused.
"""

import argparse
import copy
import pickle
import sys
from typing import Optional


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Check pretrained weights against CCFormer modules')
    parser.add_argument('--config', help='model config (needed for --backbone; optional for --vggish)')
    parser.add_argument('--backbone', help='visual backbone checkpoint (e.g. official pvt_v2_b5.pth)')
    parser.add_argument('--vggish', help='VGGish checkpoint (official vggish-10086976.pth)')
    args = parser.parse_args(argv)
    if not (args.backbone or args.vggish):
        parser.error('give --backbone and/or --vggish')
    if args.backbone and not args.config:
        parser.error('--backbone needs --config (the backbone type and size come from it)')
    return args


def check_module(module_cfg: dict, path: str, what: str) -> int:
    """Build ``module_cfg`` with a Pretrained ``init_cfg`` from ``path``, load it; return the tensor count."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import projects.ccformer  # noqa: F401

    init_default_scope('mmseg')
    cfg = copy.deepcopy(dict(module_cfg))
    cfg['init_cfg'] = dict(type='Pretrained', checkpoint=path)
    module = MODELS.build(cfg)
    module.init_weights()
    n = len(module.state_dict())
    print(f'OK  {what}: {path} loads into {cfg["type"]} ({n} tensors)')
    return n


def main(argv=None) -> int:
    args = parse_args(argv)
    model_cfg: Optional[dict] = None
    if args.config:
        from mmengine.config import Config

        model_cfg = Config.fromfile(args.config).model
    ok = True
    jobs = []
    if args.vggish:
        vggish_cfg = (model_cfg or {}).get('audio_encoder') or dict(type='VGGish')
        jobs.append((vggish_cfg, args.vggish, 'VGGish'))
    if args.backbone:
        jobs.append((model_cfg['backbone'], args.backbone, 'backbone'))
    for cfg, path, what in jobs:
        try:
            check_module(cfg, path, what)
        except (KeyError, ValueError, FileNotFoundError, RuntimeError, pickle.UnpicklingError) as err:
            ok = False
            print(f'FAIL {what}: {err}', file=sys.stderr)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
