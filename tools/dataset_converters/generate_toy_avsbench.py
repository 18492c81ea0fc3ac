"""Write a toy AVSBench dataset (S4, MS3 or AVSS layout) for tests and the demo.

Examples::

    python tools/dataset_converters/generate_toy_avsbench.py data/toy/Single-source --layout s4
    python tools/dataset_converters/generate_toy_avsbench.py data/toy/AVSS --layout avss \
        --num-videos 8 4 4 --img-size 320 240 --subsets v1s v2 --seed 1
    python tools/dataset_converters/generate_toy_avsbench.py data/recorded/Multi-sources --layout ms3 \
        --family recorded --num-videos 96 16 32 --img-size 64
"""

import argparse

from projects.ccformer.datasets.toy import DEFAULT_NUM_VIDEOS, FAMILIES, generate_toy_avsbench
from projects.ccformer.datasets.toy_recorded import TAKE_SETS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', help='output dataset root (created)')
    parser.add_argument('--layout', choices=['s4', 'ms3', 'avss'], default='s4')
    parser.add_argument(
        '--num-videos',
        type=int,
        nargs=3,
        metavar=('TRAIN', 'VAL', 'TEST'),
        default=[DEFAULT_NUM_VIDEOS[s] for s in ('train', 'val', 'test')],
        help='videos per split (per subset for AVSS)',
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--img-size',
        type=int,
        nargs='+',
        default=None,
        metavar='N',
        help='frame size: one int (square) or W H; default 224 (S4/MS3), 320 240 (AVSS)',
    )
    parser.add_argument(
        '--subsets', nargs='+', default=['v1s', 'v1m', 'v2'], choices=['v1s', 'v1m', 'v2'], help='AVSS subsets'
    )
    parser.add_argument(
        '--family',
        choices=FAMILIES,
        default='synthetic',
        help='synthetic: coloured shapes heard as tones (fast, the tests); recorded: photos of animals heard '
        'through real recordings in a room (docs/robustness.md)',
    )
    parser.add_argument(
        '--test-takes',
        choices=TAKE_SETS,
        default=None,
        help='recorded family: the recordings test clips hear, the held-out takes (default), the training takes or all',
    )
    parser.add_argument('--assets', default=None, help='recorded family: assets folder (default: the shipped one)')
    args = parser.parse_args(argv)
    if args.family != 'recorded' and (args.test_takes or args.assets):
        parser.error('--test-takes and --assets apply to --family recorded only')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    size = None
    if args.img_size:
        if len(args.img_size) not in (1, 2):
            raise SystemExit('--img-size takes one int or W H')
        size = args.img_size[0] if len(args.img_size) == 1 else tuple(args.img_size)
    family = args.family
    if family == 'recorded':
        family = dict(type='recorded', test_takes=args.test_takes or 'heldout')
        if args.assets:
            family['assets_root'] = args.assets
    rows = generate_toy_avsbench(
        args.root,
        layout=args.layout,
        num_videos=dict(zip(('train', 'val', 'test'), args.num_videos)),
        seed=args.seed,
        img_size=size,
        subsets=args.subsets,
        family=family,
    )
    print(f'wrote {len(rows)} {args.layout} videos ({args.family}) to {args.root}')


if __name__ == '__main__':
    main()
