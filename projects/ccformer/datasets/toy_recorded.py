"""The ``recorded`` data family of the toy generator: photos of animals heard through real recordings.

Where the synthetic family (:mod:`.toy`) gives each kind one tone, this family looks and sounds more like the world:

* **Sound.** Each kind (cow, chicken, horse, pig, sheep, dog, elephant, goat, duck, lion) has several real
  recordings ("takes") from different sources (``assets/recorded/sounds/<kind>/``). A clip hears each of its
  sounding animals through one take, a fresh window of it every second (a window within 10 dB of the take's loudest,
  :class:`~.sound_bank.SoundBank`), at its own level (RMS -28 to -14 dBFS per source, +-3 dB per second). The
  mixture gets a room: reverberation (exponentially decaying noise, RT60 0.05-0.6 s, wet share 0-0.5) and a room
  tone (pink or brown noise at -60 to -40 dBFS, sometimes mains hum) in every second, so a quiet second is quiet,
  not digital zero.
* **Takes held out.** The takes of each kind are split once (sorted names; every third take, from the third, is
  held out). Train and val clips hear only the training takes; test clips hear the held-out takes
  (``test_takes='heldout'``, the default), the training takes (``'train'``) or all (``'all'``), so a test can ask
  whether a kind is recognised through a recording never heard in training.
* **Pictures.** Each visible animal is a photo cut-out (``assets/recorded/pictures/<kind>/``, alpha-matted), at a
  random scale (30-55% of the frame's height), mirrored at random, colour-jittered per channel, drifting slowly;
  with probability 0.25 a kind appears twice. Objects may overlap: the later one occludes the earlier, and the
  ground truth follows what is visible. The background is a crop of a landscape photo (``backgrounds/``) or a
  procedural texture, with its own colour jitter.
* **Schedule.** As in the synthetic family: S4 clips have one sounding visible kind; MS3 / AVSS-multi clips switch
  1-2 sounding visible kinds every second, one second in five mixing in an off-screen kind; with ``allow_empty``
  about a quarter of the seconds after the first are quiet (room tone only) or play a kind that is not visible alone
  (empty ground truth).

The assets (about 4 MB: 16 kHz mono Ogg Vorbis, small PNG cut-outs, 160x120 JPEG backgrounds) come from Debian
packages under free licences; ``assets/recorded/manifest.json`` lists every file's package and source path, and
``assets/recorded/licenses/`` holds the packages' copyright files (``tools/misc/build_recorded_assets.py`` rebuilds
them). The folders ``assets/recorded/bank`` (music, household, signals, workshop, crowd) and
``assets/recorded/bank_heldout`` (aircraft, weather, water, vehicles, blasts) are sound banks of things that are
never on screen, in disjoint categories: the first for negative-audio training, the second for tests.
"""

import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .audio import SAMPLE_RATE
from .palette import AVSS_NUM_CLASSES
from .toy_clip import ToyClip

#: The shipped assets of the recorded family.
ASSETS_ROOT = osp.join(osp.dirname(osp.abspath(__file__)), 'assets', 'recorded')
#: Sound bank of non-animal recordings for negative-audio training (kinds never on screen).
TRAIN_BANK = osp.join(ASSETS_ROOT, 'bank')
#: Sound bank of non-animal recordings for tests, in categories disjoint from :data:`TRAIN_BANK`'s.
HELDOUT_BANK = osp.join(ASSETS_ROOT, 'bank_heldout')
TAKE_SETS = ('heldout', 'train', 'all')


def split_takes(files: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``(train, heldout)`` takes of one kind: sorted by name, every third take from the third is held out."""
    files = sorted(files)
    heldout = files[2::3]
    return [f for f in files if f not in heldout], heldout


class RecordedFamily:
    """Clip maker of the ``recorded`` family (module docstring).

    Args:
        assets_root (str): folder with ``sounds/<kind>/``, ``pictures/<kind>/`` and ``backgrounds/``. Defaults to
            the shipped :data:`ASSETS_ROOT`.
        test_takes (str): the takes test clips hear: ``'heldout'`` (never in train or val), ``'train'`` or
            ``'all'``. Defaults to ``'heldout'``.
        kinds (Sequence[str], optional): the kinds to use (default: every kind with takes and pictures).
    """

    name = 'recorded'

    def __init__(
        self, assets_root: str = ASSETS_ROOT, test_takes: str = 'heldout', kinds: Optional[Sequence[str]] = None
    ) -> None:
        from .sound_bank import SoundBank

        if test_takes not in TAKE_SETS:
            raise ValueError(f'RecordedFamily: test_takes={test_takes!r}; use one of {TAKE_SETS}')
        for sub in ('sounds', 'pictures', 'backgrounds'):
            if not osp.isdir(osp.join(assets_root, sub)):
                raise FileNotFoundError(
                    f'RecordedFamily: {osp.join(assets_root, sub)} is missing; the assets folder needs sounds/, '
                    f'pictures/ and backgrounds/ (rebuild the shipped ones with tools/misc/build_recorded_assets.py)'
                )
        self.assets_root, self.test_takes = assets_root, test_takes
        self.bank = SoundBank(osp.join(assets_root, 'sounds'))
        pictures = self._read_pictures(osp.join(assets_root, 'pictures'))
        available = sorted(k for k in self.bank.kinds if k and k in pictures)
        if kinds is not None:
            missing = sorted(set(kinds) - set(available))
            if missing:
                raise ValueError(f'RecordedFamily: kinds {missing} have no takes or pictures; use some of {available}')
            available = sorted(kinds)
        if len(available) < 4:
            raise ValueError(f'RecordedFamily: needs at least 4 kinds with takes and pictures, found {available}')
        self.kinds: Tuple[str, ...] = tuple(available)
        self.pictures = {k: pictures[k] for k in self.kinds}
        self.takes: Dict[str, Dict[str, List[int]]] = {}
        groups = self.bank.indices(self.kinds)
        for kind in self.kinds:
            by_name = {self.bank.files[i]: i for i in groups[kind]}
            train, heldout = split_takes(list(by_name))
            if not train or not heldout:
                raise ValueError(
                    f'RecordedFamily: kind {kind!r} needs at least 3 takes (2 for training, 1 held out), '
                    f'has {len(by_name)} in {osp.join(assets_root, "sounds", kind)}'
                )
            self.takes[kind] = dict(
                train=[by_name[f] for f in train],
                heldout=[by_name[f] for f in heldout],
                all=[by_name[f] for f in sorted(by_name)],
            )
        self.backgrounds = [
            cv2.imread(osp.join(assets_root, 'backgrounds', f), cv2.IMREAD_COLOR)
            for f in sorted(_image_files(osp.join(assets_root, 'backgrounds')))
        ]
        if not self.backgrounds:
            raise ValueError(f'RecordedFamily: no background picture in {osp.join(assets_root, "backgrounds")}')

    @staticmethod
    def _read_pictures(root: str) -> Dict[str, List[np.ndarray]]:
        """``{kind: [BGRA uint8 cut-outs]}`` of the PNGs under ``root/<kind>/``."""
        out: Dict[str, List[np.ndarray]] = {}
        if not osp.isdir(root):
            return out
        for kind in sorted(os.listdir(root)):
            folder = osp.join(root, kind)
            if not osp.isdir(folder):
                continue
            images = []
            for name in sorted(_image_files(folder)):
                img = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
                if img is None or img.ndim != 3 or img.shape[2] != 4:
                    raise ValueError(f'RecordedFamily: {osp.join(folder, name)} is not an RGBA picture (a cut-out)')
                images.append(img)
            if images:
                out[kind] = images
        return out

    def class_names(self) -> List[str]:
        """The 71 AVSS class names in index order: background, the kinds, then fillers."""
        names = ['background'] + list(self.kinds)
        return names + [f'toy_class_{i:02d}' for i in range(len(names), AVSS_NUM_CLASSES)]

    # ------------------------------------------------------------------------------------------------------------
    # pictures

    def _background(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        """A crop of a background photo (p = 0.7) or a procedural texture, colour-jittered, BGR uint8."""
        if rng.random() < 0.7:
            photo = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
            ph, pw = photo.shape[:2]
            scale = rng.uniform(0.5, 1.0)
            ch, cw = max(int(ph * scale), 8), max(int(pw * scale), 8)
            y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
            img = cv2.resize(photo[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)
            if rng.random() < 0.5:
                img = img[:, ::-1]
        else:
            low = rng.uniform(30, 200, (max(h // 8, 2), max(w // 8, 2), 3))
            img = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 12, (h, w, 3))
        img = img * rng.uniform(0.7, 1.2, 3) + rng.uniform(-20, 20)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _objects(self, rng: np.random.Generator, visible: Sequence[str], h: int, w: int) -> List[dict]:
        """Placements of the visible kinds' cut-outs (one each, a second instance of one with p = 0.25)."""
        kinds = list(visible)
        if rng.random() < 0.25:
            kinds.append(kinds[int(rng.integers(len(kinds)))])
        objects = []
        for kind in [kinds[int(i)] for i in rng.permutation(len(kinds))]:  # drawing order = occlusion order
            pics = self.pictures[kind]
            pic = pics[int(rng.integers(len(pics)))]
            oh = max(int(h * rng.uniform(0.3, 0.55)), 4)
            ow = max(int(round(oh * pic.shape[1] / pic.shape[0])), 4)
            ow = min(ow, w - 2)
            cut = cv2.resize(pic, (ow, oh), interpolation=cv2.INTER_AREA)
            if rng.random() < 0.5:
                cut = cut[:, ::-1]
            color = np.clip(cut[..., :3] * rng.uniform(0.8, 1.2, 3), 0, 255).astype(np.uint8)
            # the least-overlapping of 4 random positions: objects may still occlude each other, rarely fully
            tries = [(int(rng.integers(0, max(w - ow, 1))), int(rng.integers(0, max(h - oh, 1)))) for _ in range(4)]
            x, y = min(tries, key=lambda p: sum(_overlap(p, (ow, oh), o) for o in objects))
            objects.append(
                dict(
                    kind=kind,
                    color=color,
                    alpha=cut[..., 3] > 127,
                    x=x,
                    y=y,
                    dx=int(rng.integers(-1, 2)) * max(w // 64, 1),
                    dy=int(rng.integers(-1, 2)) * max(h // 96, 1),
                )
            )
        return objects

    def _render(
        self, background: np.ndarray, objects: List[dict], frame: int, sounding: Sequence[str]
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Frame ``frame`` (BGR uint8) and its label map (class index of a sounding kind's visible pixels)."""
        img = background.copy()
        owner = np.full(img.shape[:2], -1, np.int64)
        h, w = owner.shape
        for i, obj in enumerate(objects):
            oh, ow = obj['alpha'].shape
            x = int(np.clip(obj['x'] + obj['dx'] * frame, 0, w - ow))
            y = int(np.clip(obj['y'] + obj['dy'] * frame, 0, h - oh))
            mask = obj['alpha']
            img[y : y + oh, x : x + ow][mask] = obj['color'][mask]
            owner[y : y + oh, x : x + ow][mask] = i
        label = np.zeros((h, w), np.uint8)
        for i, obj in enumerate(objects):
            if obj['kind'] in sounding:
                label[owner == i] = self.kinds.index(obj['kind']) + 1
        return img, label

    # ------------------------------------------------------------------------------------------------------------
    # sound

    def _take(self, rng: np.random.Generator, kind: str, split: str) -> int:
        pool = self.takes[kind]['train' if split != 'test' else self.test_takes]
        return pool[int(rng.integers(len(pool)))]

    def _soundtrack(
        self, rng: np.random.Generator, schedule: Sequence[Sequence[str]], takes: Dict[str, int]
    ) -> np.ndarray:
        """16 kHz waveform: each second the kinds of ``schedule[s]`` through their takes, in a room."""
        n = SAMPLE_RATE
        fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * n))
        levels = {k: rng.uniform(-28.0, -14.0) for k in takes}
        dry = np.zeros(n * len(schedule))
        for s, kinds in enumerate(schedule):
            for kind in kinds:
                wave = self.bank.window(rng, takes[kind], n).waveform.astype(np.float64)
                rms = np.sqrt(np.mean(wave**2)) + 1e-8
                gain = 10 ** ((levels[kind] + rng.uniform(-3, 3)) / 20) / rms
                dry[s * n : (s + 1) * n] += wave * gain * fade
        rt60, wet = rng.uniform(0.05, 0.6), rng.uniform(0.0, 0.5)
        t = np.arange(int(rt60 * n)) / n
        ir = rng.normal(0, 1, len(t)) * np.exp(-6.9 * t / rt60)
        ir /= np.sqrt(np.sum(ir**2)) + 1e-8
        from scipy.signal import fftconvolve

        audio = (1 - wet) * dry + wet * fftconvolve(dry, ir)[: len(dry)]
        audio += _room_tone(rng, len(dry))
        return np.clip(audio, -1, 1)

    # ------------------------------------------------------------------------------------------------------------

    def make_clip(
        self, rng: np.random.Generator, num_frames: int, h: int, w: int, multi: bool, allow_empty: bool, split: str
    ):
        """A clip of 2-3 visible animals; ``multi`` and ``allow_empty`` as in the synthetic family."""
        n_vis = int(rng.integers(2, 4))
        order = [self.kinds[int(i)] for i in rng.permutation(len(self.kinds))]
        visible, hidden = order[:n_vis], order[n_vis:]
        target = visible[int(rng.integers(len(visible)))]
        schedule, quiet, on_screen = [], [], []
        for s in range(num_frames):
            if multi:
                now = [str(k) for k in rng.choice(visible, size=int(rng.integers(1, 3)), replace=False)]
                if rng.random() < 0.2:
                    now.append(hidden[int(rng.integers(len(hidden)))])
            else:
                now = [target]
            mute = False
            if allow_empty and s > 0 and rng.random() < 0.25:
                if rng.random() < 0.5:
                    now = [hidden[int(rng.integers(len(hidden)))]]
                else:
                    now, mute = [], True
            schedule.append(now)
            quiet.append(mute)
            on_screen.append([k for k in now if k in visible])
        takes = {k: self._take(rng, k, split) for k in sorted({k for now in schedule for k in now})}
        background = self._background(rng, h, w)
        objects = self._objects(rng, visible, h, w)
        frames, labels = [], []
        for s in range(num_frames):
            img, lab = self._render(background, objects, s, on_screen[s])
            frames.append(img)
            labels.append(lab)
        audio = self._soundtrack(rng, schedule, takes)
        return ToyClip(
            frames,
            labels,
            audio,
            sorted({k for now in on_screen for k in now}),
            sorted(visible),
            [sorted(now) for now in schedule],
        )


def _overlap(xy: Tuple[int, int], wh: Tuple[int, int], obj: dict) -> int:
    """Area shared by the box at ``xy`` of size ``wh`` and ``obj``'s box."""
    oh, ow = obj['alpha'].shape
    dx = min(xy[0] + wh[0], obj['x'] + ow) - max(xy[0], obj['x'])
    dy = min(xy[1] + wh[1], obj['y'] + oh) - max(xy[1], obj['y'])
    return max(dx, 0) * max(dy, 0)


def _image_files(folder: str) -> List[str]:
    return [f for f in os.listdir(folder) if f.lower().endswith(('.png', '.jpg', '.jpeg'))]


def _room_tone(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pink or brown noise at -60 to -40 dBFS RMS, with mains hum (50 or 60 Hz and harmonics) in a third of rooms."""
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    slope = 0.5 if rng.random() < 0.5 else 1.0  # pink: 1/f power, brown: 1/f^2
    spectrum[1:] /= freqs[1:] ** slope
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    noise *= 10 ** (rng.uniform(-60, -40) / 20) / (np.sqrt(np.mean(noise**2)) + 1e-12)
    if rng.random() < 1 / 3:
        t = np.arange(n) / SAMPLE_RATE
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        hum = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
        noise += hum * 10 ** (rng.uniform(-60, -45) / 20)
    return noise
