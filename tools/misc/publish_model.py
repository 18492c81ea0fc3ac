"""Prepare a trained checkpoint for release (mmseg ``tools/misc/publish_model.py`` conventions).

    python tools/misc/publish_model.py work_dirs/exp/best_mIoU_iter_4000.pth ccformer_pvtv2-b5_s4.pth
    # -> ccformer_pvtv2-b5_s4-<first 8 hex digits of its sha256>.pth

The training state is removed: ``optimizer``, ``param_schedulers``, ``message_hub`` and ``ema_state_dict`` (the raw
weights that configs averaging the weights with ``EMAHook``, the robust ones, keep for resuming; their
``state_dict`` already holds the average). ``state_dict`` and ``meta`` (with ``dataset_meta``, which
``init_avs_model`` reads) are kept. Unlike mmseg's script the hash is taken of the
file actually published, so ``sha256sum`` of the released file starts with the suffix in its name. The input is read
without executing code (``projects/ccformer/engine/safe_checkpoint.py``; ``CCFORMER_TRUSTED_CHECKPOINTS=FILE`` opts a
trusted legacy file in to full unpickling).
"""

import argparse
import io
import os.path as osp
from hashlib import sha256

import torch

TRAINING_KEYS = ('optimizer', 'param_schedulers', 'message_hub', 'ema_state_dict')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Process a checkpoint to be published')
    parser.add_argument('in_file', help='input checkpoint filename')
    parser.add_argument('out_file', help='output checkpoint filename (the sha256 prefix is appended)')
    parser.add_argument(
        '--keep-training-state',
        action='store_true',
        help='keep optimizer / scheduler / message hub / the raw weights of EMA configs (for resuming)',
    )
    return parser.parse_args(argv)


def process_checkpoint(in_file: str, out_file: str, keep_training_state: bool = False) -> str:
    """Strip the training state and save as ``<out stem>-<sha256[:8]>.pth`` (atomically). Returns that path."""
    from projects.ccformer.engine.safe_checkpoint import load_checkpoint_file
    from projects.ccformer.utils.atomic import write_bytes

    if not osp.isfile(in_file):
        raise FileNotFoundError(f'checkpoint {in_file} does not exist')
    checkpoint = load_checkpoint_file(in_file, map_location='cpu')
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise ValueError(f'{in_file} is not an mmengine checkpoint (no "state_dict" key)')
    if not keep_training_state:
        for key in TRAINING_KEYS:
            checkpoint.pop(key, None)
    # hashed in memory, then written under its final name atomically (an earlier file of that name is replaced only
    # by a complete one; out_file itself is never written)
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    data = buf.getvalue()
    stem = out_file[: -len('.pth')] if out_file.endswith('.pth') else out_file
    final_file = f'{stem}-{sha256(data).hexdigest()[:8]}.pth'
    write_bytes(final_file, data)
    return final_file


def main(argv=None) -> str:
    args = parse_args(argv)
    final = process_checkpoint(args.in_file, args.out_file, args.keep_training_state)
    print(f'published {final}')
    return final


if __name__ == '__main__':
    main()
