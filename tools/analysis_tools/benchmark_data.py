"""Throughput of a config's data pipeline, per data-loader worker (clips/s; command line of
``projects.ccformer.benchmark.pipeline_throughput``).

Builds ``train_dataloader.dataset`` (or ``--split val|test``) from the config and runs its pipeline (loading frames,
masks and audio, augmentation, packing) in this one process, as one data-loader worker does. The model needs
``clips/s per worker x num_workers`` >= its training clips/s for data loading to keep up.

Example (the paper's S4 pipeline on toy data at 224 x 224)::

    python tools/dataset_converters/generate_toy_avsbench.py /tmp/toy224 --layout s4 --img-size 224
    python tools/analysis_tools/benchmark_data.py configs/ccformer_pvt_s4.py --data-root /tmp/toy224 --clips 40
"""

import argparse
import json
from typing import List, Optional

from mmengine.config import Config, DictAction

from projects.ccformer.benchmark import pipeline_throughput, write_json


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="clips/s of a config's data pipeline in one worker")
    parser.add_argument('config')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--data-root', help='override the dataset data_root')
    parser.add_argument('--clips', type=int, default=50, help='timed clips (cycling over the dataset)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed clips first')
    parser.add_argument('--json', help='write the result here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Print (and write, with ``--json``) the throughput; return it."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    result = dict(config=args.config, **pipeline_throughput(cfg, args.split, args.data_root, args.clips, args.warmup))
    print(json.dumps(result, indent=1))
    write_json(result, args.json)
    return result


if __name__ == '__main__':
    main()
