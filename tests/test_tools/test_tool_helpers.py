"""In-process tests of the clip visualization hook, AudioSwapDataset, the tools' option handling, the
prediction-saving hook, the dataset converter for raw videos, publish_model and the pretrained-weights checker."""

import csv
import glob
import hashlib
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from _tools import load_tool
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')

import projects.ccformer  # noqa: E402,F401
from projects.ccformer.datasets import AudioSwapDataset, derangement  # noqa: E402
from projects.ccformer.engine.hooks import AVSPredictionSaveHook, AVSVisualizationHook, draw_clip  # noqa: E402


def _s4_test_clip(root: str):
    """Frame paths and GT of the first toy S4 test clip."""
    from projects.ccformer.datasets import AVSBenchS4Dataset

    ds = AVSBenchS4Dataset(data_root=root, split='test', pipeline=[], test_mode=True)
    return ds, ds.get_data_info(0)


# ----------------------------------------------------------------------------------------------- visualization
def test_draw_clip_layout_and_colours():
    frames = [np.full((8, 10, 3), 100, np.uint8) for _ in range(3)]
    pred = np.zeros((3, 8, 10), np.int64)
    pred[1, 2:6, 2:6] = 1
    gt = np.zeros_like(pred)
    gt[0, :4] = 1
    img = draw_clip(frames, pred, gt, gt_valid=[1, 1, 0], palette=[(0, 0, 0), (255, 0, 0)], alpha=0.5, with_text=False)
    assert img.shape == (16, 30, 3)
    assert (img[0:8, 0:10] == 100).all()  # pred row, frame 1: no foreground -> untouched
    assert tuple(img[4, 14]) == (177, 50, 50)  # pred row, frame 2 inside the square: 50% red
    assert tuple(img[8 + 6, 5]) == (100, 100, 100)  # GT row, frame 1 below the labelled band
    assert tuple(img[8 + 1, 5]) == (177, 50, 50)  # GT row, frame 1 in the band (not on the contour)
    assert (img[8:16, 20:30] == 50).all()  # GT row, frame 3 has no label: dimmed


def test_visualization_hook_writes_one_image_per_clip(toy_s4_root, tmp_path):
    from mmseg.visualization import SegLocalVisualizer

    _, info = _s4_test_clip(toy_s4_root)
    vis = SegLocalVisualizer.get_instance(
        'test_avs_vis_hook', vis_backends=[dict(type='LocalVisBackend')], save_dir=str(tmp_path)
    )
    vis.dataset_meta = dict(classes=('background', 'foreground'), palette=[[0, 0, 0], [255, 255, 255]])
    gt = np.stack([cv2.imread(p, cv2.IMREAD_GRAYSCALE) > 127 for p in info['mask_paths']]).astype(np.int64)
    sample = SegDataSample(
        metainfo=dict(video_id=info['video_id'], frame_paths=info['frame_paths'], gt_valid=[1] * 5, frame_valid=[1] * 5)
    )
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(gt))
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(gt))
    hook = AVSVisualizationHook(draw=True, interval=1)
    runner = type('R', (), {'iter': 7})()
    hook.after_test_iter(runner, 0, None, [sample])
    files = glob.glob(osp.join(str(tmp_path), '**', f'test_{info["video_id"]}_7.png'), recursive=True)
    assert len(files) == 1
    img = cv2.imread(files[0])[..., ::-1]
    h, w = gt.shape[1:]
    assert img.shape == (2 * h, 5 * w, 3)
    assert np.array_equal(img[16:h], img[h + 16 :])  # prediction == GT here: rows agree below the labels
    # white binary palette is replaced by red for visibility: labelled pixels are redder than the frame
    frame = cv2.imread(info['frame_paths'][0])[..., ::-1].astype(int)
    inside = gt[0].astype(bool)
    inside[:12] = False  # skip the text label area
    if inside.any():
        assert (img[:h, :w][inside][:, 0].astype(int) >= frame[inside][:, 0] - 1).all()
    # drawing off -> nothing written
    AVSVisualizationHook(draw=False).after_test_iter(runner, 1, None, [sample])
    assert len(glob.glob(osp.join(str(tmp_path), '**', '*.png'), recursive=True)) == 1


def test_prediction_save_hook(tmp_path):
    sample = SegDataSample(metainfo=dict(video_id='vid', frame_valid=[1, 1, 0]))
    pred = torch.zeros(3, 4, 5, dtype=torch.long)
    pred[0, 1, 2] = 1
    sample.pred_sem_seg = PixelData(data=pred)
    sample.seg_logits = PixelData(data=pred.float())
    AVSPredictionSaveHook(str(tmp_path)).after_test_iter(None, 0, None, [sample])
    files = sorted(glob.glob(str(tmp_path / 'vid' / '*.png')))
    assert [osp.basename(f) for f in files] == ['vid_1.png', 'vid_2.png']  # padded frame 3 skipped
    m = cv2.imread(files[0], cv2.IMREAD_UNCHANGED)
    assert m[1, 2] == 255 and m.sum() == 255


# ----------------------------------------------------------------------------------------------- audio swap
@pytest.mark.parametrize('n', [2, 3, 7, 10])
def test_derangement(n):
    for seed in range(5):
        p = derangement(n, seed)
        assert sorted(p) == list(range(n)) and all(p[i] != i for i in range(n))
    assert derangement(n, 3) == derangement(n, 3)


def test_derangement_needs_two():
    with pytest.raises(ValueError, match='at least 2'):
        derangement(1)


def test_audio_swap_dataset(toy_s4_root):
    ds, _ = _s4_test_clip(toy_s4_root)
    cfg = dict(type='AVSBenchS4Dataset', data_root=toy_s4_root, split='test', pipeline=[], test_mode=True)
    swapped = AudioSwapDataset(cfg, seed=0)
    assert len(swapped) == len(ds) == 2
    assert swapped.metainfo == ds.metainfo
    for i in range(2):
        a, b = ds.get_data_info(i), swapped[i]
        assert b['frame_paths'] == a['frame_paths'] and b['mask_paths'] == a['mask_paths']
        assert b['audio_path'] == ds.get_data_info(1 - i)['audio_path'] != a['audio_path']
        assert b['audio_video_id'] == ds.get_data_info(1 - i)['video_id']


# ----------------------------------------------------------------------------------------------- converters
def _gray_video(path, seconds, fps, size=(48, 64), audio=True, step=4):
    """Frame i is uniformly grey with value step * i (so a sampled frame tells its index)."""
    from projects.ccformer.apis import write_video

    n = int(seconds * fps)
    frames = [np.full(size + (3,), min(255, step * i), np.uint8) for i in range(n)]
    sr = 22050
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.4 * np.sin(2 * np.pi * 440 * t) * (1 + (t.astype(int) % 2)) / 2 if audio else None
    write_video(path, frames, fps, wave, sample_rate=sr, crf=0)
    return wave, sr


def test_videos_to_avsbench(tmp_path):
    conv = load_tool('tools/dataset_converters/videos_to_avsbench.py')
    from projects.ccformer.datasets.audio import load_logmel_pkl, load_wav, wav_to_logmel

    vids = tmp_path / 'videos'
    vids.mkdir()
    _gray_video(str(vids / 'clip a.mp4'), 6, 10)
    _gray_video(str(vids / 'long.mkv'), 10.5, 10, step=2)
    _gray_video(str(vids / 'mute.mp4'), 6, 10, audio=False)
    out = tmp_path / 'out'
    assert conv.main([str(vids), str(out), '--img-size', '32', '--segments']) == 0
    with open(out / 's4_meta_data.csv') as f:
        rows = list(csv.DictReader(f))
    assert [(r['name'], r['start_time'], r['category'], r['split']) for r in rows] == [
        ('clip_a_0', '0', 'unknown', 'test'),
        ('long_0', '0', 'unknown', 'test'),
        ('long_1', '5', 'unknown', 'test'),
    ]
    base = out / 's4_data'
    # official sampling at 10 fps: frame k is video frame int((k - 1) * 10 + 15 / 16 * 10) = 10 k - 1
    for name, step, offset in (('clip_a_0', 4, 0), ('long_1', 2, 50)):
        for k in range(1, 6):
            img = cv2.imread(str(base / 'visual_frames' / 'test' / 'unknown' / name / f'{name}_{k}.png'))
            assert img.shape == (32, 32, 3)
            assert abs(float(img.mean()) - step * (offset + 10 * k - 1)) <= 1.5, (name, k, img.mean())
    wav, rate = load_wav(str(base / 'audio_wav' / 'test' / 'unknown' / 'clip_a_0.wav'))
    assert rate == 16000 and wav.ndim == 1 and len(wav) == 5 * 16000
    pkl = load_logmel_pkl(str(base / 'audio_log_mel' / 'test' / 'unknown' / 'clip_a_0.pkl'))
    assert pkl.shape == (5, 1, 96, 64)
    np.testing.assert_allclose(
        pkl[:, 0], wav_to_logmel(str(base / 'audio_wav' / 'test' / 'unknown' / 'clip_a_0.wav'))[:5], rtol=1e-6
    )
    # without --segments a video gives one clip named after the file
    out2 = tmp_path / 'out2'
    assert conv.main([str(vids), str(out2), '--img-size', '32', '--split', 'val', '--category', 'mine']) == 0
    with open(out2 / 's4_meta_data.csv') as f:
        assert [r['name'] + ':' + r['split'] + ':' + r['category'] for r in csv.DictReader(f)] == [
            'clip_a:val:mine',
            'long:val:mine',
        ]
    assert not (base / 'audio_wav' / 'test' / 'unknown' / 'mute.wav').exists()


def test_videos_to_avsbench_official_csv(tmp_path):
    """AVSBench mode: raw_videos/<split>/<category>/<name>.mp4 listed by the official CSV keep split/category."""
    conv = load_tool('tools/dataset_converters/videos_to_avsbench.py')
    raw = tmp_path / 'raw_videos' / 'val' / 'dog_barking'
    raw.mkdir(parents=True)
    _gray_video(str(raw / 'abc.mp4'), 5, 10)
    csv_path = tmp_path / 's4_meta_data.csv'
    csv_path.write_text('name,start_time,category,split\nabc,0,dog_barking,val\nmissing,2,dog_barking,val\n')
    out = tmp_path / 'out'
    assert conv.main([str(tmp_path / 'raw_videos'), str(out), '--csv', str(csv_path), '--img-size', '32']) == 0
    frame = out / 's4_data' / 'visual_frames' / 'val' / 'dog_barking' / 'abc' / 'abc_5.png'
    assert abs(float(cv2.imread(str(frame)).mean()) - 4 * 49) <= 1.5  # frame int(4 * 10 + 9.375) = 49
    with open(out / 's4_meta_data.csv') as f:
        assert list(csv.reader(f)) == [['name', 'start_time', 'category', 'split'], ['abc', '0', 'dog_barking', 'val']]


def test_videos_to_avsbench_csv_keeps_every_row_and_column(tmp_path):
    """An existing CSV with another header style (``start`` for ``start_time``, read by position), a UTF-8 BOM,
    CRLF line ends and a column of its own is merged: nothing dropped, its style kept, a listed clip updated."""
    conv = load_tool('tools/dataset_converters/videos_to_avsbench.py')
    path = tmp_path / 's4_meta_data.csv'
    before = '\ufeffname,start,category,split,source\r\nold,0,dog,train,youtube\r\nredo,0,unknown,test,mine\r\n'
    path.write_bytes(before.encode('utf-8'))
    conv.write_csv(
        str(path),
        [
            dict(name='redo', start_time='5', category='unknown', split='test'),
            dict(name='new', start_time='0', category='unknown', split='test'),
        ],
    )
    data = path.read_bytes()
    assert data.startswith(b'\xef\xbb\xbf') and data.count(b'\r\n') == 4 and b'\n' not in data.replace(b'\r\n', b'')
    assert data.decode('utf-8-sig').splitlines() == [
        'name,start,category,split,source',
        'old,0,dog,train,youtube',
        'redo,5,unknown,test,mine',
        'new,0,unknown,test,',
    ]
    # a name listed twice is refused (naming both lines), and the file is left as it was
    path.write_text('name,start_time,category,split\na,0,dog,train\nb,0,dog,train\na,5,dog,train\n')
    kept = path.read_bytes()
    with pytest.raises(ValueError, match=r"'a' is listed twice \(lines 2 and 4\)"):
        conv.write_csv(str(path), [dict(name='c', start_time='0', category='unknown', split='test')])
    # a row without the four fields too
    path.write_text('name,start_time,category,split\na,0\n')
    with pytest.raises(ValueError, match=r'line 2: 2 fields; expected name, start_time, category and split'):
        conv.write_csv(str(path), [dict(name='c', start_time='0', category='unknown', split='test')])
    assert path.read_text() == 'name,start_time,category,split\na,0\n'
    path.write_bytes(kept)
    assert path.read_bytes() == kept


def test_videos_to_avsbench_into_a_root_with_its_own_csv(tmp_path, capsys):
    """The converter run into a root whose CSV has another header and a BOM keeps it whole; two videos that would
    become one clip, or a clip listed under another split, are refused before anything is converted."""
    conv = load_tool('tools/dataset_converters/videos_to_avsbench.py')
    vids, out = tmp_path / 'videos', tmp_path / 'out'
    vids.mkdir()
    out.mkdir()
    _gray_video(str(vids / 'mine.mp4'), 5, 10)
    csv_path = out / 's4_meta_data.csv'
    csv_path.write_bytes('\ufeffname,start,category,split,note\nold,0,dog,train,keep me\n'.encode('utf-8'))
    assert conv.main([str(vids), str(out), '--img-size', '32']) == 0
    assert csv_path.read_text(encoding='utf-8-sig').splitlines() == [
        'name,start,category,split,note',
        'old,0,dog,train,keep me',
        'mine,0,unknown,test,',
    ]
    assert (out / 's4_data' / 'visual_frames' / 'test' / 'unknown' / 'mine' / 'mine_5.png').is_file()
    kept = csv_path.read_bytes()
    # the clip 'mine' again, as a val clip: refused, nothing converted, the CSV as it was
    assert conv.main([str(vids), str(out), '--img-size', '32', '--split', 'val', '--overwrite']) == 2
    assert "the clip 'mine' is listed with split / category test / unknown" in capsys.readouterr().err
    assert csv_path.read_bytes() == kept and not (out / 's4_data' / 'visual_frames' / 'val').exists()
    # two files that become one clip name
    _gray_video(str(vids / 'a b.mp4'), 5, 10)
    _gray_video(str(vids / 'a_b.mp4'), 5, 10)
    assert conv.main([str(vids), str(out), '--img-size', '32']) == 2
    assert "would both become the clip 'a_b'" in capsys.readouterr().err
    assert csv_path.read_bytes() == kept


def test_videos_to_avsbench_errors(tmp_path):
    conv = load_tool('tools/dataset_converters/videos_to_avsbench.py')
    assert conv.main([str(tmp_path / 'missing'), str(tmp_path / 'out')]) == 2
    (tmp_path / 'empty').mkdir()
    assert conv.main([str(tmp_path / 'empty'), str(tmp_path / 'out')]) == 2


def test_test_py_options(tmp_path):
    """--shuffle-audio wraps the test set, --out adds the mask-saving hook, --show-dir draws clips."""
    tool = load_tool('tools/test.py')
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    args = tool.parse_args(
        [CONFIG, str(ckpt), '--shuffle-audio', '3', '--out', str(tmp_path / 'o'), '--show-dir', str(tmp_path / 's')]
    )
    cfg = tool.setup_cfg(args)
    ds = cfg.test_dataloader.dataset
    assert ds.type == 'AudioConditionDataset' and ds.condition == 'shuffled' and ds.seed == 3
    assert ds.dataset.type == 'AVSBenchS4Dataset'
    assert dict(type='AVSPredictionSaveHook', out_dir=str(tmp_path / 'o')) in cfg.custom_hooks
    # the robust config averages the weights in training (EMAHook); the checkpoint's state_dict is that average, and
    # the hook's copy of the model would miss the parts StrictCheckpointHook loads from their own files: left out
    from mmengine.config import Config

    assert any(h['type'] == 'EMAHook' for h in Config.fromfile(CONFIG).custom_hooks)
    assert not any('EMAHook' in str(h['type']) for h in cfg.custom_hooks)
    assert [h['type'] for h in cfg.custom_hooks[:2]] == ['NonFiniteCheckHook', 'IterSeedHook']
    assert cfg.default_hooks.visualization.type == 'AVSVisualizationHook'
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.visualizer.save_dir == str(tmp_path / 's')
    assert cfg.load_from == str(ckpt)
    with pytest.raises(FileNotFoundError, match='Checkpoint file'):
        tool.setup_cfg(tool.parse_args([CONFIG, str(tmp_path / 'missing.pth')]))
    cfg = tool.setup_cfg(tool.parse_args([CONFIG, str(ckpt), '--tta']))
    assert cfg.model.type == 'AVSTTAModel' and cfg.model.module.type == 'CCFormer'
    assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline
    with pytest.raises(RuntimeError, match='tta_pipeline'):
        tool.setup_cfg(tool.parse_args([CONFIG, str(ckpt), '--tta', '--cfg-options', 'tta_model=None']))


def test_test_py_audio_condition_and_data_root(tmp_path):
    """--audio-condition wraps the test set (seed, noise level), --data-root reaches the wrapped dataset."""
    tool = load_tool('tools/test.py')
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    cfg = tool.setup_cfg(
        tool.parse_args(
            [
                CONFIG,
                str(ckpt),
                '--audio-condition',
                'noise',
                '--audio-seed',
                '4',
                '--noise-dbfs',
                '-30',
                '--data-root',
                str(tmp_path / 'd'),
            ]
        )
    )
    ds = cfg.test_dataloader.dataset
    assert (ds.type, ds.condition, ds.seed, ds.noise_dbfs) == ('AudioConditionDataset', 'noise', 4, -30.0)
    assert ds.dataset.data_root == str(tmp_path / 'd') and ds.dataset.type == 'AVSBenchS4Dataset'
    assert cfg.train_dataloader.dataset.dataset.data_root == cfg.val_dataloader.dataset.data_root == str(tmp_path / 'd')
    cfg = tool.setup_cfg(tool.parse_args([CONFIG, str(ckpt), '--audio-condition', 'original']))
    assert cfg.test_dataloader.dataset.type == 'AVSBenchS4Dataset'
    assert cfg.test_dataloader.dataset.data_root == 'data/toy/s4'  # the config's own root
    # the default noise level is the documented -20 dBFS
    assert tool.parse_args([CONFIG, str(ckpt), '--audio-condition', 'noise']).noise_dbfs == -20.0
    with pytest.raises(SystemExit):
        tool.parse_args([CONFIG, str(ckpt), '--shuffle-audio', '0', '--audio-condition', 'silence'])
    with pytest.raises(SystemExit):
        tool.parse_args([CONFIG, str(ckpt), '--audio-condition', 'music'])


def test_train_py_data_root(tmp_path):
    tool = load_tool('tools/train.py')
    cfg = tool.setup_cfg(tool.parse_args([CONFIG, '--work-dir', str(tmp_path), '--data-root', str(tmp_path / 'd')]))
    assert cfg.train_dataloader.dataset.type == 'NegativeAudioDataset'  # wrapped: the root is set inside
    assert cfg.train_dataloader.dataset.dataset.data_root == str(tmp_path / 'd')
    for key in ('val', 'test'):
        assert cfg[f'{key}_dataloader'].dataset.data_root == str(tmp_path / 'd')
    cfg = tool.setup_cfg(tool.parse_args([CONFIG, '--work-dir', str(tmp_path)]))
    assert cfg.train_dataloader.dataset.dataset.data_root == 'data/toy/s4'


def test_publish_model(tmp_path):
    pub = load_tool('tools/misc/publish_model.py')
    src = str(tmp_path / 'iter_10.pth')
    state = {'w': torch.arange(4.0)}
    torch.save(
        dict(
            state_dict=state,
            optimizer=dict(state={}, param_groups=[]),
            message_hub={},
            param_schedulers=[],
            ema_state_dict={'w': torch.zeros(4)},  # EMAHook: the raw weights, state_dict holds their average
            meta=dict(dataset_meta=dict(classes=('bg', 'fg'))),
        ),
        src,
    )
    (tmp_path / 'ccformer_tiny.pth').write_bytes(b'a file of mine')  # a file named like out_file is not touched
    final = pub.process_checkpoint(src, str(tmp_path / 'ccformer_tiny.pth'))
    sha = hashlib.sha256(open(final, 'rb').read()).hexdigest()
    assert final == str(tmp_path / f'ccformer_tiny-{sha[:8]}.pth')
    ckpt = torch.load(final, weights_only=False)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert torch.equal(ckpt['state_dict']['w'], state['w'])
    assert (tmp_path / 'ccformer_tiny.pth').read_bytes() == b'a file of mine'
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(['iter_10.pth', 'ccformer_tiny.pth', osp.basename(final)])


def test_check_pretrained_vggish(tmp_path, capsys):
    checker = load_tool('tools/model_converters/check_pretrained.py')
    from mmengine.config import Config
    from mmseg.registry import MODELS

    audio_cfg = Config.fromfile(CONFIG).model.audio_encoder
    good = str(tmp_path / 'vggish.pth')
    torch.save(MODELS.build(audio_cfg).state_dict(), good)
    assert checker.main(['--config', CONFIG, '--vggish', good]) == 0
    assert 'OK  VGGish' in capsys.readouterr().out
    bad = str(tmp_path / 'renamed.pth')
    torch.save({k.replace('features', 'conv'): v for k, v in torch.load(good).items()}, bad)
    assert checker.main(['--config', CONFIG, '--vggish', bad]) == 1
    assert 'missing' in capsys.readouterr().err


def test_videos_to_avsbench_pads_short_audio_with_silence(tmp_path, capsys):
    """A video whose sound stops before its picture: the wav is padded with zeros to the clip length (so the
    log-mels of the missing seconds are silence, not a repeat of the last second) and the padding is reported."""
    conv = load_tool('tools/dataset_converters/videos_to_avsbench.py')
    from projects.ccformer.apis import write_video
    from projects.ccformer.datasets.audio import LOG_OFFSET, load_logmel_pkl, load_wav

    vids = tmp_path / 'videos'
    vids.mkdir()
    frames = [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(6)]
    wave = 0.4 * np.sin(2 * np.pi * 440 * np.arange(int(2.5 * 16000)) / 16000)
    write_video(str(vids / 'quiet.mkv'), frames, 1, wave, sample_rate=16000)
    out = tmp_path / 'out'
    assert conv.main([str(vids), str(out), '--img-size', '32']) == 0
    printed = capsys.readouterr().out
    assert 'note: quiet: the audio is' in printed and 's of silence' in printed
    padded = float(printed.split('padded with ')[1].split(' s')[0])
    assert 2.3 < padded < 2.6
    base = out / 's4_data'
    wav, _ = load_wav(str(base / 'audio_wav' / 'test' / 'unknown' / 'quiet.wav'))
    assert len(wav) == 5 * 16000 and not wav[int(2.7 * 16000) :].any()
    pkl = load_logmel_pkl(str(base / 'audio_log_mel' / 'test' / 'unknown' / 'quiet.pkl'))
    np.testing.assert_allclose(pkl[3:], np.log(LOG_OFFSET), rtol=1e-6)
    assert np.abs(pkl[1] - np.log(LOG_OFFSET)).max() > 1


def test_videos_to_avsbench_removes_the_files_of_a_failed_video(tmp_path, monkeypatch):
    """A failure while a video's files are written leaves none of them behind; other videos are converted."""
    conv = load_tool('tools/dataset_converters/videos_to_avsbench.py')
    vids = tmp_path / 'videos'
    vids.mkdir()
    _gray_video(str(vids / 'good.mp4'), 6, 10)
    _gray_video(str(vids / 'bad.mp4'), 6, 10)
    real = conv.write_logmel_pkl

    def failing(path, waveform, num):
        if 'bad' in osp.basename(path):
            raise OSError(f'disk full while writing {path}')
        return real(path, waveform, num)

    monkeypatch.setattr(conv, 'write_logmel_pkl', failing)
    out = tmp_path / 'out'
    assert conv.main([str(vids), str(out), '--img-size', '32']) == 0
    files = sorted(osp.relpath(p, out) for p in glob.glob(str(out / '**' / '*'), recursive=True) if osp.isfile(p))
    assert not [f for f in files if 'bad' in f], files
    assert len([f for f in files if 'good' in f]) == 5 + 2
    assert not (out / 's4_data' / 'visual_frames' / 'test' / 'unknown' / 'bad').exists()


def test_tools_refuse_checkpoints_with_payloads(tmp_path, capsys):
    """publish_model, the pretrained checker and the Pretrained init of VGGish read weights-only: a payload is
    refused (naming the file) and never runs."""
    import os

    from mmengine.config import Config
    from mmseg.registry import MODELS

    from projects.ccformer.engine.safe_checkpoint import UnsafeCheckpointError

    marker = str(tmp_path / 'PWNED')

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    audio_cfg = Config.fromfile(CONFIG).model.audio_encoder
    evil = str(tmp_path / 'evil.pth')
    torch.save(dict(MODELS.build(audio_cfg).state_dict(), extra=Payload()), evil)
    pub = load_tool('tools/misc/publish_model.py')
    with pytest.raises(UnsafeCheckpointError, match=f'refused to load checkpoint {evil}'):
        pub.process_checkpoint(evil, str(tmp_path / 'released.pth'))
    checker = load_tool('tools/model_converters/check_pretrained.py')
    assert checker.main(['--config', CONFIG, '--vggish', evil]) == 1
    assert f'FAIL VGGish: refused to load checkpoint {evil}' in capsys.readouterr().err
    vggish = MODELS.build(dict(audio_cfg, init_cfg=dict(type='Pretrained', checkpoint=evil)))
    with pytest.raises(UnsafeCheckpointError):
        vggish.init_weights()
    assert not osp.exists(marker)


def test_tools_and_demo_do_not_edit_sys_path():
    """Tools and the demo import the installed package (``pip install -e .``); none edits ``sys.path``."""
    import re

    scripts = glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True) + glob.glob(
        osp.join(ROOT, 'demo', '*.py')
    )
    edits = [
        osp.relpath(p, ROOT)
        for p in scripts
        if re.search(r'sys\.path\.(insert|append|extend)\(|sys\.path\[[^]]*\]\s*=', open(p).read())
    ]
    assert scripts and not edits, f'sys.path edits in {edits}'


@pytest.mark.parametrize('tool_path', ['tools/test.py', 'tools/analysis_tools/robustness.py'])
def test_tests_load_the_checkpoint_strictly_and_never_resume(tmp_path, tool_path):
    """Both test tools load the checkpoint as saved: StrictCheckpointHook refuses one that does not fit the model
    (mmengine alone would warn and test random weights), the EMA hook is left out, and a config saved by a resumed
    training run (``resume = True``) does not make the test resume."""
    from mmengine.config import Config

    tool = load_tool(tool_path)
    saved = tmp_path / 'as_trained.py'
    cfg = Config.fromfile(CONFIG)
    cfg.resume = True
    cfg.dump(str(saved))
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    out = tool.setup_cfg(tool.parse_args([str(saved), str(ckpt), '--work-dir', str(tmp_path / 'w')]))
    assert out.resume is False and out.load_from == str(ckpt)
    strict = [h for h in out.custom_hooks if h['type'] == 'StrictCheckpointHook']
    assert strict == [dict(type='StrictCheckpointHook', checkpoint=str(ckpt), config=str(saved), allow_partial=False)]
    assert not any('EMAHook' in str(h['type']) for h in out.custom_hooks)
    partial = tool.setup_cfg(tool.parse_args([str(saved), str(ckpt), '--allow-partial-checkpoint']))
    assert [h for h in partial.custom_hooks if h['type'] == 'StrictCheckpointHook'][0]['allow_partial'] is True
