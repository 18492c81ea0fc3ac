"""Which frames of a split get a mask with the true audio, grouped by what sounds in them (S4 / MS3).

Usage::

    python tools/analysis_tools/empty_frames.py CONFIG CHECKPOINT --data-root DATA [--split test] [--out R.json]

The clips of the split (``--split``, default test) are predicted with their own audio; every scored frame is put
in a group by its ground truth and by what the data say each second hears (``clip_kinds.json`` in the data root,
written by ``tools/dataset_converters/generate_toy_avsbench.py``; the S4 CSV's categories, one for the whole clip,
which put every empty frame in the fourth group; otherwise unknown): *sounding* (foreground in the ground truth), and
among the empty-ground-truth frames *only kinds not on screen sound*, *nothing sounds*, *a visible kind sounds* and
*unknown*. It prints how many frames of each group get a mask (any pixel with ``sigmoid(logit) > 0.5``, the metric's
rule) and, with ``--out``, writes them as JSON. The empty groups together give the "empty (true)" figure of
``tools/analysis_tools/robustness.py``; the split says whether a model masks quiet seconds (the level of the sound)
or seconds in which something off screen sounds (which kind sounds, and whether it is in the picture). See
docs/robustness.md.
"""

import argparse
import json

from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from projects.ccformer.apis import init_avs_model
from projects.ccformer.datasets import AVSSDataset
from projects.ccformer.datasets.audio_conditions import dataset_clip_kinds
from projects.ccformer.datasets.audio_conditions.clip_kinds import base_dataset
from projects.ccformer.engine import set_data_root
from projects.ccformer.evaluation.empty_frames import format_causes, frame_causes, predict_frames
from projects.ccformer.utils.atomic import write_text
from projects.ccformer.utils.config import check_input_files


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--data-root', help='dataset directory (sets data_root of the split read)')
    parser.add_argument('--split', choices=('test', 'val'), default='test', help='the dataloader read (default test)')
    parser.add_argument('--out', help='JSON file to write the figures to (replaced when it exists)')
    parser.add_argument('--device', default='cpu', help="device of the model, e.g. 'cuda' (default: cpu)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    check_input_files(args.config, args.checkpoint)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    key = f'{args.split}_dataloader'
    set_data_root(cfg, args.data_root, keys=(key,))
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader = Runner.build_dataloader(cfg[key])
    base = base_dataset(loader.dataset)
    if isinstance(base, AVSSDataset):
        raise ValueError(f'{args.config}: {key} reads AVSS (semantic masks); this tool reads S4 / MS3 (binary masks)')
    model = init_avs_model(cfg, args.checkpoint, device=args.device)
    ids = [str(base.get_data_info(i)['video_id']) for i in range(len(base))]
    kinds = dict(zip(ids, dataset_clip_kinds(base)))
    causes = frame_causes(predict_frames(model, loader), kinds)
    report = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        data_root=args.data_root or cfg.get('data_root'),
        split=args.split,
        clips_with_kinds=sum(k is not None for k in kinds.values()),
        clips=len(kinds),
        groups=causes,
    )
    print(
        f'{args.split} split of {report["data_root"]}: {len(kinds)} clips, what sounds known for '
        f'{report["clips_with_kinds"]}'
    )
    print(format_causes(causes))
    if args.out:
        write_text(args.out, json.dumps(report, indent=2))
        print(f'written: {args.out}')
    return report


if __name__ == '__main__':
    main()
