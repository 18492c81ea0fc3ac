"""Throughput of a config's data pipeline, per data-loader worker (clips/s).

Builds ``train_dataloader.dataset`` (or ``--split val|test``) from the config and runs its pipeline (loading frames,
masks and audio, augmentation, packing) in this one process, as one data-loader worker does. The model needs
``clips/s per worker x num_workers`` >= its training clips/s for data loading to keep up.

Example (the paper's S4 pipeline on toy data at 224 x 224)::

    python tools/dataset_converters/generate_toy_avsbench.py /tmp/toy224 --layout s4 --img-size 224
    python tools/analysis_tools/benchmark_data.py configs/ccformer_pvt_s4.py --data-root /tmp/toy224 --clips 40
"""

import argparse
import json
import statistics
import time
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='clips/s of a config\'s data pipeline in one worker')
    parser.add_argument('config')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--data-root', help='override the dataset data_root')
    parser.add_argument('--clips', type=int, default=50, help='timed clips (cycling over the dataset)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed clips first')
    parser.add_argument('--json', help='write the result here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import DATASETS

    import projects.ccformer  # noqa: F401,E501  (registers the datasets and transforms)

    ds_cfg = cfg[f'{args.split}_dataloader'].dataset
    if args.data_root:
        ds_cfg.data_root = args.data_root
    dataset = DATASETS.build(ds_cfg)  # an empty split or a missing file stops here, naming the file
    for i in range(args.warmup):
        dataset[i % len(dataset)]
    times = []
    for i in range(args.clips):
        start = time.perf_counter()
        sample = dataset[(args.warmup + i) % len(dataset)]
        times.append(time.perf_counter() - start)
    frames = int(sample['inputs'].shape[0])
    median = statistics.median(times)
    result = dict(
        config=args.config,
        split=args.split,
        data_root=ds_cfg.data_root,
        clips=args.clips,
        frames_per_clip=frames,
        frame_shape=list(sample['inputs'].shape[-2:]),
        median_s_per_clip=median,
        mean_s_per_clip=statistics.fmean(times),
        clips_per_s_per_worker=1.0 / median,
        frames_per_s_per_worker=frames / median,
    )
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
