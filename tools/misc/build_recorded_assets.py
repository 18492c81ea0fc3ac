"""Build the recordings, pictures and backgrounds of the recorded toy family from Debian packages.

The assets under ``projects/ccformer/datasets/assets/recorded/`` were made with this script; it documents where
each file comes from and makes them again::

    mkdir -p /tmp/debs && cd /tmp/debs && apt-get download 0ad-data tuxpaint-stamps-default tuxpaint-data \
        gcompris-qt-data openttd-opensfx sound-theme-freedesktop wesnoth-1.16-data
    python tools/misc/build_recorded_assets.py /tmp/debs

Every written file is listed in ``manifest.json`` with its package, the file inside the package and the licence
stated for it in that package's Debian copyright file, which is copied to ``licenses/``. Sounds are mixed down to
mono, resampled to 16 kHz, cut to their loudest few seconds, peak-normalised and stored as Ogg Vorbis; pictures
(cut-outs with an alpha channel) are cropped to their alpha and scaled to at most 96 px; backgrounds to 160 x 120.
"""

import argparse
import glob
import io
import json
import os
import os.path as osp
import re
import shutil
import struct
import subprocess
import tempfile
import zipfile
import zlib

import numpy as np

OUT = osp.join(osp.dirname(__file__), '..', '..', 'projects', 'ccformer', 'datasets', 'assets', 'recorded')
SR = 16000

TUX = 'usr/share/tuxpaint/stamps/'
ZAD = 'audio/'
GC = 'gcompris/src/activities/'
WES = 'usr/share/games/wesnoth/1.16/data/core/sounds/'

# (package, path inside the package) -> kind; 0ad paths are inside public.zip, gcompris inside its .rcc files,
# openttd-opensfx entries are numbered sounds of opensfx.cat.
ANIMAL_SOUNDS = {
    'cow': [('0ad-data', ZAD + f'actor/fauna/animal/cattle_0{i}.ogg') for i in range(1, 8)]
    + [('tuxpaint-stamps-default', TUX + f'animals/mammals/bovines/{n}.ogg') for n in ('cow', 'cow_white', 'bull')]
    + [('gcompris-qt-data', GC + 'explore_farm_animals/resource/animals/cow.ogg'), ('openttd-opensfx', '37')],
    'chicken': [('0ad-data', ZAD + f'actor/fauna/animal/chicken_{i}.ogg') for i in range(10, 14)]
    + [('tuxpaint-stamps-default', TUX + f'animals/birds/{n}.ogg') for n in ('hen', 'rooster')]
    + [('gcompris-qt-data', GC + 'explore_farm_animals/resource/animals/chickens.ogg')],
    'horse': [('0ad-data', ZAD + 'actor/fauna/animal/horse_11.ogg')]
    + [('0ad-data', ZAD + f'actor/fauna/animal/horse_{a}{i}.ogg') for a in ('idle', 'select') for i in (1, 2, 3)]
    + [('tuxpaint-stamps-default', TUX + 'animals/mammals/equines/horse.ogg')]
    + [('gcompris-qt-data', GC + 'explore_farm_animals/resource/animals/horse.ogg'), ('openttd-opensfx', '38')]
    + [('wesnoth-1.16-data', WES + f'horse-hit-{i}.ogg') for i in (1, 2, 3)],
    'pig': [('0ad-data', ZAD + f'actor/fauna/animal/pig_{i}.ogg') for i in (10, 11)]
    + [('tuxpaint-stamps-default', TUX + f'animals/mammals/{n}.ogg') for n in ('pig', 'pig_golden', 'pig_golden2')]
    + [('gcompris-qt-data', GC + 'explore_farm_animals/resource/animals/pig.ogg')],
    'sheep': [('0ad-data', ZAD + f'actor/fauna/animal/sheep_{i}.ogg') for i in (10, 11)]
    + [('tuxpaint-stamps-default', TUX + f'animals/mammals/bovines/{n}.ogg') for n in ('sheep', 'sheep_lamb')]
    + [('gcompris-qt-data', GC + 'explore_farm_animals/resource/animals/sheep.ogg'), ('openttd-opensfx', '36')],
    'dog': [('tuxpaint-stamps-default', TUX + 'animals/mammals/dogs/dog.ogg')]
    + [('gcompris-qt-data', GC + 'explore_farm_animals/resource/animals/dog.ogg')]
    + [('gcompris-qt-data', GC + f'memory-sound/resource/LRBark_{i}_LA_cut.ogg') for i in (1, 3)],
    'elephant': [
        ('0ad-data', ZAD + f'actor/fauna/animal/elephant_{n}.ogg')
        for n in ('attack1', 'attack2', 'attack3', 'death1', 'order1', 'order2', 'select1', 'select2', 'trained1')
    ]
    + [('tuxpaint-stamps-default', TUX + 'animals/mammals/elephant.ogg')],
    'goat': [('0ad-data', ZAD + f'actor/fauna/death/goat_{i}.ogg') for i in range(10, 18)]
    + [('tuxpaint-stamps-default', TUX + f'animals/mammals/bovines/{n}.ogg') for n in ('goat', 'mountaingoat')],
    'duck': [('tuxpaint-stamps-default', TUX + f'animals/birds/{n}.ogg') for n in ('duck', 'drake')]
    + [('gcompris-qt-data', GC + 'explore_farm_animals/resource/animals/duck.ogg')],
    'lion': [('0ad-data', ZAD + f'actor/fauna/animal/lion_{n}.ogg') for n in ('attack1', 'attack2', 'select1')]
    + [('tuxpaint-stamps-default', TUX + 'animals/mammals/cats/lion.ogg')],
}

PICTURES = {
    'cow': [
        'animals/mammals/bovines/cow.png',
        'animals/mammals/bovines/cow_white.png',
        'animals/mammals/bovines/bull.png',
    ],
    'chicken': ['animals/birds/hen.png', 'animals/birds/rooster.png', 'animals/birds/chicken_profile.png'],
    'horse': ['animals/mammals/equines/horse.png'],
    'pig': ['animals/mammals/pig.png', 'animals/mammals/pig_golden.png', 'animals/mammals/pig_golden2.png'],
    'sheep': [
        'animals/mammals/bovines/sheep.png',
        'animals/mammals/bovines/sheep_lamb.png',
        'animals/mammals/bovines/ram.png',
    ],
    'dog': ['animals/mammals/dogs/dog.png', 'animals/mammals/dogs/dingo.png'],
    'elephant': ['animals/mammals/elephant.png'],
    'goat': ['animals/mammals/bovines/goat.png', 'animals/mammals/bovines/mountaingoat.png'],
    'duck': ['animals/birds/duck.png', 'animals/birds/drake.png'],
    'lion': ['animals/mammals/cats/lion.png', 'animals/mammals/cats/lion-2.png'],
}

# Off-screen sounds, in two banks with no category in common: `bank` for training, `bank_heldout` for evaluation.
FD = 'usr/share/sounds/freedesktop/stereo/'
INSTRUMENTS = (
    'accordion banjo bongo castanets cello clarinet cymbal electric_guitar flute_traversiere guitar '
    'harmonica harp horn maracas organ piano saxophone snare_drum tambourine timpani triangle trombone '
    'trumpet tuba violin'
).split()
BANK = {
    'music': [('gcompris-qt-data', GC + f'instruments/resource/{n}.ogg') for n in INSTRUMENTS]
    + [
        ('tuxpaint-stamps-default', TUX + f'hobbies/music/{n}.ogg')
        for n in ('percussion/cymbal_crash', 'percussion/drum_tomtom_floor', 'string/violin', 'wind/bassoon')
    ],
    'household': [
        ('tuxpaint-stamps-default', TUX + f'household/{n}.ogg')
        for n in (
            'Washing-machine',
            'kettle',
            'vacuum_cleaner',
            'toilet',
            'tools/hammer',
            'tools/mallet_metal',
            'tools/saw',
            'dishes/bottle',
            'dishes/glass',
            'arttools/scissors_small_open',
        )
    ]
    + [
        ('gcompris-qt-data', GC + f'memory-sound/resource/{n}.ogg')
        for n in ('LRDoor_Open_2_LA', 'LRObject_falling_01_LA', 'LRObject_falling_02_LA', 'LRRing_01_LA')
    ],
    'signals': [
        ('sound-theme-freedesktop', FD + f'{n}.oga')
        for n in (
            'bell',
            'alarm-clock-elapsed',
            'phone-incoming-call',
            'phone-outgoing-busy',
            'complete',
            'camera-shutter',
            # not 'dialog-warning': the package's copyright file does not name its licence
            'message-new-instant',
            'trash-empty',
        )
    ]
    + [('openttd-opensfx', n) for n in ('20', '21', '22')],
    'workshop': [('gcompris-qt-data', GC + f'memory-sound/resource/LRFactory_noise_0{i}_LA.ogg') for i in range(1, 7)]
    + [('openttd-opensfx', n) for n in ('11', '12', '33', '39', '40')],
    'crowd': [
        ('gcompris-qt-data', GC + 'memory-sound/resource/LRApplauses_1_LA_cut.ogg'),
        ('openttd-opensfx', '29'),
        ('openttd-opensfx', '30'),
    ],
}
BANK_HELDOUT = {
    'aircraft': [('openttd-opensfx', n) for n in ('8', '9', '24')]
    + [('tuxpaint-stamps-default', TUX + 'space/apollo_lander.ogg')],
    'weather': [
        ('0ad-data', ZAD + f'ambient/weather/{n}.ogg')
        for n in ('thunder_10', 'thunder_11', 'rain_12', 'wind_11', 'windgust_11', 'windstorm_11')
    ]
    + [
        ('tuxpaint-stamps-default', TUX + 'naturalforces/lightningbolt.ogg'),
        ('gcompris-qt-data', GC + 'memory-sound/resource/LRRain_in_garden_01_LA_cut.ogg'),
    ],
    'water': [
        ('0ad-data', ZAD + f'ambient/water/{n}.ogg')
        for n in ('river_fast_21', 'river_slow_21', 'waterfall_31', 'wave_21', 'wavecrash_21', 'waverocky_21')
    ],
    'vehicles': [('openttd-opensfx', n) for n in ('4', '5', '6', '7', '10', '14', '25', '27', '28', '35')]
    + [
        ('gcompris-qt-data', GC + f'memory-sound/resource/{n}.ogg')
        for n in ('LRTrain_slowing_down_01_LA_cut', 'LRStartAndStopCarEngine1LACut')
    ]
    + [('0ad-data', ZAD + f'actor/ship/{n}.ogg') for n in ('ship_move', 'warship_move_01')],
    'blasts': [('openttd-opensfx', n) for n in ('17', '18', '19')]
    + [('tuxpaint-stamps-default', TUX + 'seasonal/newyears/fireworks.ogg')],
}
BACKGROUNDS = [
    n
    for n in (
        'burnt_bark cliff corn_maze lighthouse mossy_bark mossy_log mudstone ocean_splash '
        'ocean_waves redwoods_above rocks spiders_web sun_behind_clouds sun_behind_leaves '
        'trees_above trees_at_dusk wool_mill_machine jellyfish'
    ).split()
]


# ------------------------------------------------------------------------------------------ package readers
def _deb_extract(deb: str, dest: str) -> None:
    subprocess.run(['dpkg-deb', '-x', deb, dest], check=True)


def _rcc_files(path: str) -> dict:
    """Files of a Qt resource (.rcc) file, {path: bytes} (zlib-compressed entries inflated)."""
    b = open(path, 'rb').read()
    if b[:4] != b'qres':
        raise ValueError(f'{path}: not a Qt resource file')
    ver, tree, data, names = struct.unpack('>IIII', b[4:20])
    node = 22 if ver >= 2 else 14
    out = {}

    def name(off):
        (n,) = struct.unpack('>H', b[names + off : names + off + 2])
        return b[names + off + 6 : names + off + 6 + 2 * n].decode('utf-16-be')

    def walk(i, prefix):
        base = tree + i * node
        noff, flags = struct.unpack('>IH', b[base : base + 6])
        nm = name(noff) if i else ''
        if flags & 2:
            cnt, first = struct.unpack('>II', b[base + 6 : base + 14])
            for c in range(cnt):
                walk(first + c, osp.join(prefix, nm))
        else:
            (doff,) = struct.unpack('>I', b[base + 10 : base + 14])
            (size,) = struct.unpack('>I', b[data + doff : data + doff + 4])
            blob = b[data + doff + 4 : data + doff + 4 + size]
            out[osp.join(prefix, nm)] = zlib.decompress(blob[4:]) if flags & 1 else blob

    walk(0, '')
    return out


def _opensfx(path: str) -> dict:
    """OpenTTD OpenSFX sounds, {index: (description, wav bytes)}."""
    b = open(path, 'rb').read()
    (first,) = struct.unpack('<I', b[:4])
    out = {}
    for i in range((first & 0x7FFFFFFF) // 8):
        off, size = struct.unpack('<II', b[8 * i : 8 * i + 8])
        blob = b[off & 0x7FFFFFFF : (off & 0x7FFFFFFF) + size]
        n = blob[0]
        out[str(i)] = (blob[1 : 1 + n].rstrip(b'\0').decode('latin1'), blob[1 + n :])
    return out


class Sources:
    """Reads files out of the extracted packages."""

    def __init__(self, debs: str, work: str) -> None:
        self.root = work
        self.pkg = {}
        for deb in sorted(glob.glob(osp.join(debs, '*.deb'))):
            name = osp.basename(deb).split('_')[0]
            dest = osp.join(work, name)
            if name == '0ad-data':  # 3 GB unpacked: take only the archive member we need
                os.makedirs(dest, exist_ok=True)
                member = './usr/share/games/0ad/mods/public/public.zip'
                tar = subprocess.Popen(['dpkg-deb', '--fsys-tarfile', deb], stdout=subprocess.PIPE)
                subprocess.run(
                    ['tar', '-x', '-C', dest, member, './usr/share/doc/0ad-data/copyright'],
                    stdin=tar.stdout,
                    check=True,
                )
                tar.wait()
            else:
                _deb_extract(deb, dest)
            self.pkg[name] = (dest, osp.basename(deb))
        self._zip = None
        self._rcc = {}
        self._sfx = None

    def version(self, package: str) -> str:
        return self.pkg[package][1]

    def copyright(self, package: str) -> str:
        return osp.join(self.pkg[package][0], 'usr/share/doc', package, 'copyright')

    def read(self, package: str, path: str) -> bytes:
        dest = self.pkg[package][0]
        if package == '0ad-data':
            if self._zip is None:
                self._zip = zipfile.ZipFile(osp.join(dest, 'usr/share/games/0ad/mods/public/public.zip'))
            return self._zip.read(path)
        if package == 'gcompris-qt-data':
            activity = path.split('/')[3]
            if activity not in self._rcc:
                self._rcc[activity] = _rcc_files(osp.join(dest, 'usr/share/gcompris-qt/rcc', activity + '.rcc'))
            return self._rcc[activity][path]
        if package == 'openttd-opensfx':
            if self._sfx is None:
                self._sfx = _opensfx(osp.join(dest, 'usr/share/games/openttd/baseset/opensfx/opensfx.cat'))
            return self._sfx[path][1]
        with open(osp.join(dest, path), 'rb') as f:
            return f.read()

    def describe(self, package: str, path: str) -> str:
        if package == 'openttd-opensfx':
            if self._sfx is None:
                self.read(package, path)
            return f'opensfx.cat sound {path}: {self._sfx[path][0]}'
        if package == '0ad-data':
            return f'public.zip:{path}'
        if package == 'gcompris-qt-data':
            return f'{path.split("/")[3]}.rcc:{path}'
        return path


# ------------------------------------------------------------------------------------------ processing
def _sound(raw: bytes, max_seconds: float) -> np.ndarray:
    import soundfile as sf
    from scipy.signal import resample_poly

    wave, sr = sf.read(io.BytesIO(raw), dtype='float32', always_2d=True)
    wave = wave.mean(1)
    if sr != SR:
        g = np.gcd(int(sr), SR)
        wave = resample_poly(wave, SR // g, int(sr) // g).astype(np.float32)
    # trim quiet ends (below -45 dB of the peak, 20 ms frames), keep the loudest max_seconds
    hop = SR // 50
    env = np.sqrt(np.convolve(wave**2, np.ones(hop) / hop, mode='same') + 1e-12)
    loud = np.nonzero(env > env.max() * 10 ** (-45 / 20))[0]
    wave = wave[loud[0] : loud[-1] + 1]
    n = int(max_seconds * SR)
    if len(wave) > n:
        energy = np.convolve(wave**2, np.ones(n), mode='valid')
        start = int(np.argmax(energy[::hop]) * hop)
        wave = wave[start : start + n]
    fade = min(len(wave) // 4, SR // 100)
    if fade:
        ramp = np.linspace(0, 1, fade, dtype=np.float32)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return wave / max(float(np.abs(wave).max()), 1e-6) * 0.89


def _write_ogg(path: str, wave: np.ndarray) -> None:
    import soundfile as sf

    os.makedirs(osp.dirname(path), exist_ok=True)
    sf.write(path, wave, SR, format='OGG', subtype='VORBIS')


def _picture(raw: bytes, path: str) -> None:
    from PIL import Image

    img = Image.open(io.BytesIO(raw)).convert('RGBA')
    img = img.crop(img.getchannel('A').point(lambda a: 255 if a > 16 else 0).getbbox())
    img.thumbnail((96, 96), Image.LANCZOS)
    os.makedirs(osp.dirname(path), exist_ok=True)
    img.save(path, optimize=True)


def _background(raw: bytes, path: str) -> None:
    from PIL import Image

    img = Image.open(io.BytesIO(raw)).convert('RGB')
    w, h = img.size
    s = max(160 / w, 120 / h)
    img = img.resize((max(160, round(w * s)), max(120, round(h * s))), Image.LANCZOS)
    w, h = img.size
    img = img.crop(((w - 160) // 2, (h - 120) // 2, (w - 160) // 2 + 160, (h - 120) // 2 + 120))
    os.makedirs(osp.dirname(path), exist_ok=True)
    img.save(path, quality=85, optimize=True)


def _slug(text: str) -> str:
    return re.sub(r'[^a-z0-9]+', '_', text.lower()).strip('_')[:40]


def build(debs: str, out: str) -> dict:
    manifest = dict(sounds=[], pictures=[], backgrounds=[])
    with tempfile.TemporaryDirectory() as work:
        src = Sources(debs, work)
        if osp.isdir(out):
            shutil.rmtree(out)
        groups = [('sounds', ANIMAL_SOUNDS, 3.0), ('bank', BANK, 4.0), ('bank_heldout', BANK_HELDOUT, 4.0)]
        for folder, table, seconds in groups:
            for kind, items in table.items():
                for package, path in items:
                    name = _slug(osp.splitext(osp.basename(path))[0] if '/' in path else src.describe(package, path))
                    rel = f'{folder}/{kind}/{package.split("-")[0]}_{name}.ogg'
                    _write_ogg(osp.join(out, rel), _sound(src.read(package, path), seconds))
                    manifest['sounds'].append(
                        dict(file=rel, kind=kind, package=src.version(package), source=src.describe(package, path))
                    )
        for kind, paths in PICTURES.items():
            for path in paths:
                rel = f'pictures/{kind}/{osp.splitext(osp.basename(path))[0]}.png'
                _picture(src.read('tuxpaint-stamps-default', TUX + path), osp.join(out, rel))
                manifest['pictures'].append(
                    dict(file=rel, kind=kind, package=src.version('tuxpaint-stamps-default'), source=TUX + path)
                )
        for name in BACKGROUNDS:
            path = f'usr/share/tuxpaint/templates/{name}.jpg'
            rel = f'backgrounds/{name}.jpg'
            _background(src.read('tuxpaint-data', path), osp.join(out, rel))
            manifest['backgrounds'].append(dict(file=rel, package=src.version('tuxpaint-data'), source=path))
        os.makedirs(osp.join(out, 'licenses'), exist_ok=True)
        used = {e['package'].split('_')[0] for part in manifest.values() for e in part}
        for package in sorted(used):
            shutil.copy(src.copyright(package), osp.join(out, 'licenses', f'{package}.copyright'))
    with open(osp.join(out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('debs', help='folder holding the Debian packages (.deb) named in the docstring')
    parser.add_argument('--out', default=OUT, help='output folder (default: the package assets folder)')
    args = parser.parse_args()
    manifest = build(args.debs, osp.abspath(args.out))
    print({k: len(v) for k, v in manifest.items()})


if __name__ == '__main__':
    main()
