"""Turn videos into the official AVSBench S4 layout (frames, 16 kHz wav, log-mel ``.pkl``, CSV).

Two modes::

    # AVSBench raw videos + the official CSV (raw_videos/<split>/<category>/<name>.mp4)
    python tools/dataset_converters/videos_to_avsbench.py data/AVSBench/Single-source/s4_data/raw_videos \\
        data/AVSBench/Single-source --csv data/AVSBench/Single-source/s4_meta_data.csv

    # a folder of your own videos (mp4, mkv, webm, avi, mov; any length, with an audio track)
    python tools/dataset_converters/videos_to_avsbench.py my_videos/ data/my_s4 [--split test] [--segments]

Written under OUT_ROOT (the S4 layout of ``docs/data.md``)::

    s4_meta_data.csv                                        name,start_time,category,split
    s4_data/visual_frames/<split>/<category>/<name>/<name>_<k>.png   k = 1..5, 224x224
    s4_data/audio_wav/<split>/<category>/<name>.wav                  16 kHz, 16-bit PCM, mono
    s4_data/audio_log_mel/<split>/<category>/<name>.pkl              pickled torch tensor [5, 1, 96, 64]

Frames follow the official ``preprocess_s4.py``: with ``fps = round(video fps)`` frame k (k = 1..5) is video frame
``int((k - 1) * fps + 15/16 * fps)`` (clamped to the last frame), resized to 224x224 with ``cv2.resize`` (bilinear,
aspect ratio not kept). The wav is the clip's audio at 16 kHz (channels averaged; resampled with ``resampy``, the
VGGish resampler, where the official script let moviepy/ffmpeg resample); the ``.pkl`` is the VGGish log-mel of
that wav, written with ``pickle.dump`` (protocol 4) as the official script does. Audio shorter than the picture is
padded with silence (zeros) to the clip length and reported ("note: ... padded with X s of silence"); the official
script repeated the last 0.96 s example instead, and the dataset loaders keep that repeat for the official files.
A video whose conversion fails leaves no files behind (what was written for it is removed).

An existing ``s4_meta_data.csv`` in OUT_ROOT is merged, never truncated: it is read whatever its header names (the
name, start time, category and split columns by name, else by position 0..3 as the S4 dataset reads it), with or
without a UTF-8 BOM and with any line ends; its other rows and columns are kept as they are, a re-converted clip's
row is updated in place, and the file is rewritten atomically (temporary file, then rename) in its own style. A
name listed twice (in the CSV, or by two of your videos) is refused before anything is converted.

Your own videos get category ``unknown`` (``--category``) and split ``test`` (``--split``). Without ground-truth
masks they can be segmented with ``demo/video_demo.py`` / the Python API; to evaluate or train on them, add masks
as ``s4_data/gt_masks/<split>/<category>/<name>/<name>_<k>.png`` (0/255, 224x224).
"""

import argparse
import csv
import io
import math
import os
import os.path as osp
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

VIDEO_EXTS = ('.mp4', '.mkv', '.webm', '.avi', '.mov', '.m4v', '.flv', '.mpg', '.mpeg')
CSV_FIELDS = ['name', 'start_time', 'category', 'split']
AUDIO_RATE = 16000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Convert videos to the AVSBench S4 layout')
    parser.add_argument('video_dir', help='folder of videos (AVSBench: raw_videos/ with <split>/<category>/)')
    parser.add_argument('out_root', help='output dataset root (gets s4_meta_data.csv and s4_data/)')
    parser.add_argument(
        '--csv',
        help='official s4_meta_data.csv (name,start_time,category,split): convert the '
        'videos it lists, keeping their split and category',
    )
    parser.add_argument(
        '--split', default='test', choices=['train', 'val', 'test'], help='split of your own videos (default: test)'
    )
    parser.add_argument('--category', default='unknown', help='category of your own videos (default: unknown)')
    parser.add_argument('--num-frames', type=int, default=5, help='frames (= seconds) per clip (S4: 5)')
    parser.add_argument('--img-size', type=int, default=224, help='frame size (official: 224)')
    parser.add_argument(
        '--segments',
        action='store_true',
        help='cut each of your videos into consecutive num-frames-second clips '
        '(<name>_<i>, start_time = i * num_frames) instead of keeping only the first one',
    )
    parser.add_argument('--workers', type=int, default=1, help='parallel processes')
    parser.add_argument('--overwrite', action='store_true', help='redo clips whose files already exist')
    return parser.parse_args(argv)


def list_jobs(args: argparse.Namespace) -> List[Dict]:
    """One job per source video: ``dict(path, name, category, split, start_time, clips)``."""
    if not osp.isdir(args.video_dir):
        raise FileNotFoundError(f'video folder {args.video_dir} does not exist')
    jobs = []
    if args.csv:
        if not osp.isfile(args.csv):
            raise FileNotFoundError(f'CSV {args.csv} does not exist')
        table = MetaCSV.read(args.csv)
        for line, row in table.data_rows():
            name, start, category, split = (table.get(row, f) for f in CSV_FIELDS)
            candidates = [
                osp.join(args.video_dir, split, category, name + '.mp4'),
                osp.join(args.video_dir, name + '.mp4'),
            ]
            path = next((p for p in candidates if osp.isfile(p)), candidates[0])
            jobs.append(
                dict(path=path, name=name, category=category, split=split, start_time=start or '0', official=True)
            )
        return jobs
    names = sorted(f for f in os.listdir(args.video_dir) if osp.splitext(f)[1].lower() in VIDEO_EXTS)
    if not names:
        raise FileNotFoundError(f'no video files ({", ".join(VIDEO_EXTS)}) in {args.video_dir}')
    for fname in names:
        stem = osp.splitext(fname)[0].replace(' ', '_')
        jobs.append(
            dict(
                path=osp.join(args.video_dir, fname),
                name=stem,
                category=args.category,
                split=args.split,
                start_time='0',
                official=False,
            )
        )
    same = _duplicates([j['name'] for j in jobs])
    if same:
        files = [osp.basename(j['path']) for j in jobs if j['name'] == same[0]]
        raise ValueError(
            f'{args.video_dir}: {" and ".join(files)} would both become the clip {same[0]!r} (spaces turn into '
            '_): rename one of them'
        )
    return jobs


def _duplicates(names: Sequence[str]) -> List[str]:
    seen, twice = set(), []
    for n in names:
        if n in seen and n not in twice:
            twice.append(n)
        seen.add(n)
    return twice


def write_logmel_pkl(path: str, waveform: np.ndarray, num: int) -> np.ndarray:
    """VGGish log-mel of a 16 kHz waveform, repeat-padded to ``num``, pickled like the official script.

    Returns:
        The ``(num, 1, 96, 64)`` examples written.
    """
    from projects.ccformer.datasets.audio import pad_examples_repeat, save_logmel_pkl, waveform_to_logmel

    examples = pad_examples_repeat(waveform_to_logmel(waveform, AUDIO_RATE), num, path)[:, None]
    save_logmel_pkl(path, examples)
    return examples


def write_wav(path: str, waveform: np.ndarray) -> None:
    """16 kHz mono 16-bit PCM wav (the official ``audio_wav`` format)."""
    import soundfile as sf

    from projects.ccformer.utils.atomic import write_bytes

    buf = io.BytesIO()
    sf.write(buf, np.clip(waveform, -1, 32767 / 32768), AUDIO_RATE, subtype='PCM_16', format='WAV')
    write_bytes(path, buf.getvalue())


def clip_paths(out_root: str, split: str, category: str, name: str, num_frames: int) -> Dict:
    base = osp.join(out_root, 's4_data')
    return dict(
        frames=[
            osp.join(base, 'visual_frames', split, category, name, f'{name}_{k}.png') for k in range(1, num_frames + 1)
        ],
        wav=osp.join(base, 'audio_wav', split, category, f'{name}.wav'),
        pkl=osp.join(base, 'audio_log_mel', split, category, f'{name}.pkl'),
    )


def convert_video(
    job: Dict, out_root: str, num_frames: int = 5, img_size: int = 224, segments: bool = False, overwrite: bool = False
) -> Tuple[List[Dict], Optional[str], List[str]]:
    """Convert one video into one or more clips.

    Audio shorter than the picture is padded with silence (zeros) and reported. If the conversion fails, every
    file written for this video is removed again, so no half-converted clip is left behind.

    Returns:
        ``(csv rows, error message or None, notes)``.
    """
    from projects.ccformer.datasets.video import iter_video_frames, read_video_audio_pcm, video_info
    from projects.ccformer.utils.atomic import write_image

    written: List[str] = []
    try:
        info = video_info(job['path'])
        if not info['has_audio']:
            return [], f'{job["path"]}: no audio track; AVSBench clips need sound (skipped)', []
        if job['official']:
            # official clip length (preprocess_s4.py); frames beyond it are clamped like past-the-end indices
            n_clips, clip_names, starts = 1, [job['name']], [0]
        else:
            whole = int(math.floor(info['duration'] + 1e-6))
            n_clips = max(1, whole // num_frames) if segments else 1
            clip_names = [f'{job["name"]}_{i}' for i in range(n_clips)] if segments else [job['name']]
            starts = [i * num_frames for i in range(n_clips)]
            if whole < num_frames:
                return (
                    [],
                    (f'{job["path"]}: {info["duration"]:.2f} s is shorter than one clip of {num_frames} s (skipped)'),
                    [],
                )
        todo = [
            i
            for i, name in enumerate(clip_names)
            if overwrite
            or not all(
                osp.isfile(p) for p in _flat(clip_paths(out_root, job['split'], job['category'], name, num_frames))
            )
        ]
        rows = [
            dict(
                name=name,
                start_time=job['start_time'] if job['official'] else starts[i],
                category=job['category'],
                split=job['split'],
            )
            for i, name in enumerate(clip_names)
        ]
        if not todo:
            return rows, None, []
        # frames are decoded and written one at a time (memory does not grow with the video's length)
        wanted = set(todo)
        for k, frame, _ in iter_video_frames(job['path'], 1, n_clips * num_frames, info):
            if k // num_frames not in wanted:
                continue
            paths = clip_paths(out_root, job['split'], job['category'], clip_names[k // num_frames], num_frames)
            path = paths['frames'][k % num_frames]
            img = cv2.resize(frame, (img_size, img_size))  # bilinear, as official
            written.append(path)
            write_image(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        pcm = read_video_audio_pcm(job['path'])  # int16, 32 kB a second
        notes = []
        for i in todo:
            paths = clip_paths(out_root, job['split'], job['category'], clip_names[i], num_frames)
            s0 = starts[i] * AUDIO_RATE
            wave = pcm[s0 : s0 + num_frames * AUDIO_RATE] / 32768.0
            missing = num_frames * AUDIO_RATE - len(wave)
            if missing > 0:  # the sound stopped before the picture: the rest of the clip is silent
                wave = np.concatenate([wave, np.zeros(missing, dtype=wave.dtype)])
                notes.append(
                    f'{clip_names[i]}: the audio is {missing / AUDIO_RATE:.2f} s shorter than the picture; '
                    f'padded with {missing / AUDIO_RATE:.2f} s of silence'
                )
            written += [paths['wav'], paths['pkl']]
            write_wav(paths['wav'], wave)
            write_logmel_pkl(paths['pkl'], _read_back(paths['wav']), num_frames)
        return rows, None, notes
    except BaseException as err:
        _remove_files(written)
        if isinstance(err, (ValueError, OSError)):
            return [], f'{job["path"]}: {err} (its partly written files were removed)', []
        raise


def _remove_files(paths: List[str]) -> None:
    """Delete the files a failed conversion wrote, and the clip folders that are left empty."""
    for path in paths:
        if osp.isfile(path):
            os.remove(path)
    for folder in sorted({osp.dirname(p) for p in paths}, key=len, reverse=True):
        if osp.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


def _flat(paths: Dict) -> List[str]:
    return [*paths['frames'], paths['wav'], paths['pkl']]


def _read_back(wav_path: str) -> np.ndarray:
    """The log-mel is computed from the written wav (int16 / 32768), as the official script does."""
    from projects.ccformer.datasets.audio import load_wav

    wave, rate = load_wav(wav_path)
    assert rate == AUDIO_RATE
    return wave


class MetaCSV:
    """An S4 metadata CSV as it is on disk: its header, every row with every column, BOM and line ends.

    The fields ``name``, ``start_time``, ``category``, ``split`` are found by header name (case and spaces
    ignored), else by position 0..3 (the S4 dataset reads name and category by position too).

    Raises (:meth:`read`):
        ValueError: a name listed twice, or a row without the four fields (naming the file and lines).
    """

    def __init__(self, path: str, header: List[str], rows: List[Tuple[int, List[str]]], bom: bool, newline: str):
        self.path, self.header, self.rows, self.bom, self.newline = path, header, rows, bom, newline
        names = [h.strip().lower() for h in header]
        self.columns = {f: names.index(f) if f in names else i for i, f in enumerate(CSV_FIELDS)}
        self._index: Optional[Dict[str, Tuple[int, List[str]]]] = None

    @classmethod
    def new(cls, path: str) -> 'MetaCSV':
        return cls(path, list(CSV_FIELDS), [], False, '\r\n')

    @classmethod
    def read(cls, path: str) -> 'MetaCSV':
        with open(path, 'rb') as f:
            data = f.read()
        bom = data.startswith(b'\xef\xbb\xbf')
        try:
            text = data.decode('utf-8-sig')
        except UnicodeDecodeError as err:
            raise ValueError(f'{path} is not UTF-8 text ({err}); save it as UTF-8 (with or without BOM)') from err
        newline = '\r\n' if '\r\n' in text else '\r' if '\r' in text else '\n'
        lines = list(csv.reader(io.StringIO(text, newline='')))
        if not lines or not any(v.strip() for v in lines[0]):
            raise ValueError(
                f'{path}: empty CSV (no header line); delete it or give it the header name,start_time,category,split'
            )
        table = cls(path, lines[0], list(enumerate(lines[1:], start=2)), bom, newline)
        seen: Dict[str, int] = {}
        for line, row in table.data_rows():
            if len(row) <= max(table.columns.values()):
                raise ValueError(
                    f'{path}, line {line}: {len(row)} fields; expected name, start_time, category and split '
                    f'(header: {",".join(table.header)})'
                )
            name = table.get(row, 'name')
            if name in seen:
                raise ValueError(
                    f'{path}: the clip {name!r} is listed twice (lines {seen[name]} and {line}); a clip name must be '
                    'unique (the datasets use it as the video id). Remove one of the rows.'
                )
            seen[name] = line
        return table

    def data_rows(self):
        """``(line number, row)`` of every row that is not blank."""
        return [(line, row) for line, row in self.rows if row and any(v.strip() for v in row)]

    def get(self, row: List[str], field: str) -> str:
        return row[self.columns[field]].strip()

    def merge(self, new_rows: List[Dict]) -> None:
        """Update the rows of clips already listed (their other columns kept) and append the others.

        Raises:
            ValueError: a clip listed under another split / category than the new one, or listed twice in
                ``new_rows``.
        """
        twice = _duplicates([str(r['name']) for r in new_rows])
        if twice:
            raise ValueError(f'the clip {twice[0]!r} was converted from two videos; rename one of them')
        by_name = self._by_name()
        width = max([len(self.header)] + [c + 1 for c in self.columns.values()])
        for new in new_rows:
            name = str(new['name'])
            self.check_clip(name, str(new['split']), str(new['category']), 'the new clip of that name is')
            if name in by_name:
                row = by_name[name][1]
            else:
                row = [''] * width
                self.rows.append((len(self.rows) + 2, row))
                by_name[name] = (len(self.rows) + 1, row)
            row.extend([''] * (width - len(row)))
            for field in CSV_FIELDS:
                row[self.columns[field]] = str(new[field])

    def _by_name(self) -> Dict[str, Tuple[int, List[str]]]:
        """``{name: (line, row)}`` of the listed clips (kept up to date by :meth:`merge`)."""
        if self._index is None:
            self._index = {self.get(row, 'name'): (line, row) for line, row in self.data_rows()}
        return self._index

    def check_clip(self, name: str, split: str, category: str, what: str) -> None:
        """Refuse a clip ``name`` that the CSV lists under another split / category (two clips, one name)."""
        if name not in self._by_name():
            return
        line, row = self._index[name]
        old = (self.get(row, 'split'), self.get(row, 'category'))
        if old != (split, category):
            raise ValueError(
                f'{self.path}, line {line}: the clip {name!r} is listed with split / category {old[0]} / {old[1]}, '
                f'but {what} {split} / {category}; two clips cannot share a name. Rename the video (or choose '
                'another --split / --category).'
            )

    def write(self) -> None:
        """Rewrite the file atomically in its own style (BOM, line ends, header)."""
        from projects.ccformer.utils.atomic import atomic_open

        buf = io.StringIO(newline='')
        writer = csv.writer(buf, lineterminator=self.newline)
        writer.writerow(self.header)
        writer.writerows(row for _, row in self.rows)
        with atomic_open(self.path, 'w', encoding='utf-8-sig' if self.bom else 'utf-8', newline='') as f:
            f.write(buf.getvalue())


def write_csv(path: str, rows: List[Dict]) -> None:
    """Merge ``rows`` into ``path`` (:class:`MetaCSV`: an existing CSV keeps its other rows and columns; rows of
    clips already listed are updated) and write it atomically."""
    table = MetaCSV.read(path) if osp.isfile(path) else MetaCSV.new(path)
    table.merge(rows)
    table.write()


def main(argv=None) -> int:
    from tqdm import tqdm

    args = parse_args(argv)
    csv_path = osp.join(args.out_root, 's4_meta_data.csv')
    try:
        jobs = list_jobs(args)
        if osp.isfile(csv_path):  # a CSV that cannot be merged is refused before anything is converted
            listed = MetaCSV.read(csv_path)
            for job in jobs:
                listed.check_clip(job['name'], job['split'], job['category'], f'{job["path"]} would be')
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    kwargs = dict(
        out_root=args.out_root,
        num_frames=args.num_frames,
        img_size=args.img_size,
        segments=args.segments,
        overwrite=args.overwrite,
    )
    rows, errors, notes = [], [], []
    with tqdm(total=len(jobs), desc='videos -> AVSBench S4', unit='video') as pbar:
        if args.workers > 1:
            with ProcessPoolExecutor(args.workers) as pool:
                futures = [pool.submit(convert_video, job, **kwargs) for job in jobs]
                for fut in futures:
                    r, e, n = fut.result()
                    rows += r
                    errors += [e] if e else []
                    notes += n
                    pbar.update(1)
        else:
            for job in jobs:
                r, e, n = convert_video(job, **kwargs)
                rows += r
                errors += [e] if e else []
                notes += n
                pbar.update(1)
    if rows:
        try:
            write_csv(csv_path, rows)
        except (ValueError, OSError) as err:
            print(f'error: {err}; {csv_path} was left as it was', file=sys.stderr)
            return 2
    print(
        f'{len(rows)} clips from {len(jobs) - len(errors)}/{len(jobs)} videos written to {args.out_root} '
        f'(CSV: {csv_path})'
    )
    for note in notes:
        print(f'  note: {note}')
    for err in errors:
        print(f'  failed: {err}', file=sys.stderr)
    return 0 if rows else 1


if __name__ == '__main__':
    sys.exit(main())
