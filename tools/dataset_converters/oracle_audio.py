"""Write a copy of a toy S4 / MS3 data root whose log-mels are oracle audio: a fixed pattern per audible kind.

Usage::

    python tools/dataset_converters/oracle_audio.py SRC DST [--seed 0]

SRC is a data root written by ``generate_toy_avsbench.py`` (its ``clip_kinds.json`` says what is audible in each
second). DST, a new folder, gets the same clips: the log-mel pickles replaced (each second: the patterns of the kinds
audible in it, over a little noise; ``projects/ccformer/datasets/oracle_audio.py``), frames and masks linked to
SRC's, the other top-level files copied and folders linked. Train and test on DST as on SRC: the audio then names
exactly which kinds sound, so what a model still misses is matching the sound to the right object in the picture
(docs/robustness.md, "What limits the recorded family"). The configs must read the log-mel pickles
(``audio_source='pkl'``, the tiny configs' default): DST has no wav files, so a config that reads them fails rather
than train on the real sound. DST must not exist; it appears only when complete.
"""

import argparse

from projects.ccformer.datasets.oracle_audio import write_oracle_root


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='S4 / MS3 data root with clip_kinds.json (left unchanged)')
    parser.add_argument('dst', help='new data root to write (must not exist)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the patterns, levels and noise (default 0)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    written = write_oracle_root(args.src, args.dst, seed=args.seed)
    print(f'wrote {written} oracle log-mel files to {args.dst} (frames and masks linked to {args.src}; no wav files)')
    return written


if __name__ == '__main__':
    main()
