"""Rewrite a CCFormer checkpoint of the earlier parameter layout (before the blocks were built from mmdet / mmcv
layers) in the current one.

    python tools/model_converters/convert_ccformer_keys.py OLD.pth NEW.pth

Loading does not need it (``CCFormer`` and ``init_avs_model`` rename such keys themselves); use it to hand the
file to code outside this project. The table of renamed keys is in ``projects/ccformer/models/utils/
key_conversion.py``. The file is read without executing code (``projects.ccformer.engine.safe_checkpoint``).
"""

import argparse
import os.path as osp

import torch

from projects.ccformer.engine.safe_checkpoint import checkpoint_state_dict, load_checkpoint_file
from projects.ccformer.models.utils import convert_ccformer_keys
from projects.ccformer.utils.atomic import atomic_open


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Convert a CCFormer checkpoint to the current key layout')
    parser.add_argument('src', help='checkpoint of the earlier layout')
    parser.add_argument('dst', help='where to write the converted checkpoint (must not exist)')
    args = parser.parse_args(argv)
    if osp.exists(args.dst):
        raise SystemExit(f'convert_ccformer_keys: {args.dst} exists; choose a new file name')
    checkpoint = load_checkpoint_file(args.src)
    state = checkpoint_state_dict(checkpoint, args.src)
    before = set(state)
    convert_ccformer_keys(state)
    renamed = len(before - set(state))
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        checkpoint['state_dict'] = state
    else:
        checkpoint = state
    with atomic_open(args.dst, 'wb') as f:  # an earlier file of that name is replaced only by a complete one
        torch.save(checkpoint, f)
    print(f'{args.src}: {renamed} of {len(before)} keys renamed -> {args.dst}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
