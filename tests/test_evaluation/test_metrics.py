"""AVSBenchMetric / AVSSMetric end to end (process + compute_metrics), and mmseg's IoUMetric on clip samples.

Samples are built as docs/design.md "Metrics input" says: ``SegDataSample`` with ``gt_sem_seg``,
``pred_sem_seg`` and (binary) ``seg_logits`` as ``PixelData`` of shape ``(T, H, W)``, and metainfo ``video_id``,
``gt_valid``, ``frame_valid``. Expected values are hand-computed fractions (see test_functional.py for the rules).
"""

import random

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

from projects.ccformer.evaluation import AVSBenchMetric, AVSSMetric


def clip_sample(video_id, gt, logits=None, pred=None, gt_valid=None, frame_valid=None, **meta):
    """A SegDataSample for one clip; ``gt``/``logits``/``pred`` are nested lists of shape (T, H, W)."""
    gt = torch.tensor(gt, dtype=torch.long)
    num_frames = gt.shape[0]
    sample = SegDataSample(
        metainfo=dict(
            video_id=video_id,
            gt_valid=gt_valid or [1] * num_frames,
            frame_valid=frame_valid or [1] * num_frames,
            num_frames=num_frames,
            **meta,
        )
    )
    sample.gt_sem_seg = PixelData(data=gt)
    if logits is not None:
        logits = torch.tensor(logits, dtype=torch.float32)
        sample.seg_logits = PixelData(data=logits)
        sample.pred_sem_seg = PixelData(data=(logits.sigmoid() > 0.5).long())
    if pred is not None:
        sample.pred_sem_seg = PixelData(data=torch.tensor(pred, dtype=torch.long))
    return sample


def run_metric(metric, samples, as_dicts=True):
    """process (optionally through to_dict, as mmengine's Evaluator does) in batches of 2, then compute."""
    for i in range(0, len(samples), 2):
        batch = samples[i : i + 2]
        metric.process({}, [s.to_dict() for s in batch] if as_dicts else batch)
    return metric.compute_metrics(metric.results)


# Two one-frame videos (1x4 frames). A: gt [1,1,0,0], p [1,0,0,0] -> F curve [13/23, 13/16 x 254];
# B: gt [0,0,1,1], p [1,1,0,0] -> F curve [13/23, 0 x 254]; plus C: empty GT predicted empty.
VIDEO_A = dict(gt=[[[1, 1, 0, 0]]], logits=[[[200, -200, -200, -200]]])
VIDEO_B = dict(gt=[[[0, 0, 1, 1]]], logits=[[[200, 200, -200, -200]]])
VIDEO_C = dict(gt=[[[0, 0, 0, 0]]], logits=[[[-200, -200, -200, -200]]])


def test_legacy_fscore_depends_on_batch_size_but_batch_independent_numbers_do_not():
    samples = [clip_sample('a', **VIDEO_A), clip_sample('b', **VIDEO_B)]
    one = run_metric(AVSBenchMetric(legacy_videos_per_batch=1), samples)
    two = run_metric(AVSBenchMetric(legacy_videos_per_batch=2), samples)
    four = run_metric(AVSBenchMetric(legacy_videos_per_batch=4), samples)
    assert one['legacy_Fscore'] == pytest.approx(100 * (13 / 16 + 13 / 23) / 2, rel=1e-6)
    assert two['legacy_Fscore'] == pytest.approx(100 * 13 / 23, rel=1e-6)
    assert four['legacy_Fscore'] == two['legacy_Fscore']
    # IoU: A = 1/2 (inter 1, union 2), B = 0
    for res in (one, two, four):
        assert res['legacy_mIoU'] == pytest.approx(100 * 1 / 4, rel=1e-6)
        assert res['mIoU'] == pytest.approx(100 * 1 / 4, rel=1e-6)
        assert res['Fscore'] == pytest.approx(100 * (13 / 16 + 0) / 2, rel=1e-9)  # hard mask sigmoid > 0.5
        assert res['maxFscore'] == pytest.approx(100 * 13 / 23, rel=1e-6)
    assert {k: v for k, v in one.items() if not k.startswith('legacy')} == {
        k: v for k, v in four.items() if not k.startswith('legacy')
    }


def test_empty_only_batch_scores_zero_and_partial_last_batch():
    # videos in order A, C, A with 2 videos per batch: batches {A, C} and {A} (partial)
    samples = [clip_sample('a1', **VIDEO_A), clip_sample('c', **VIDEO_C), clip_sample('a2', **VIDEO_A)]
    res = run_metric(AVSBenchMetric(legacy_videos_per_batch=2), samples)
    # IoU: A = 1/2, C (empty, all background predicted) = 1. Batches: (1/2 + 1)/2 and 1/2
    assert res['legacy_mIoU'] == pytest.approx(100 * ((1 / 2 + 1) / 2 + 1 / 2) / 2, rel=1e-6)
    assert res['mIoU'] == pytest.approx(100 * (1 / 2 + 1 + 1 / 2) / 3, rel=1e-6)
    # F: C is skipped inside its batch, so both batches score A's 13/16
    assert res['legacy_Fscore'] == pytest.approx(100 * 13 / 16, rel=1e-6)
    # one video per batch: C's batch has no non-empty frame and scores 0, still averaged in
    res1 = run_metric(AVSBenchMetric(legacy_videos_per_batch=1), samples)
    assert res1['legacy_Fscore'] == pytest.approx(100 * (13 / 16 + 0 + 13 / 16) / 3, rel=1e-6)
    assert res1['Fscore'] == res['Fscore'] == pytest.approx(100 * 13 / 16, rel=1e-9)
    assert res['num_empty_frames'] == 1 and res['empty_fp_rate'] == 0.0


def test_gt_valid_frames_only_and_empty_false_positives():
    # frame 2 of the first clip is not annotated (gt_valid 0): its wrong prediction must not count
    first = clip_sample(
        's4', gt=[[[1, 1, 0, 0]], [[0, 0, 0, 0]]], logits=[[[9, 9, -9, -9]], [[9, 9, 9, 9]]], gt_valid=[1, 0]
    )
    # two empty-GT frames: one clean, one with 1 of 4 pixels predicted foreground
    second = clip_sample('silent', gt=[[[0, 0, 0, 0]], [[0, 0, 0, 0]]], logits=[[[-9, -9, -9, -9]], [[9, -9, -9, -9]]])
    res = run_metric(AVSBenchMetric(), [first, second], as_dicts=False)
    assert res['num_empty_frames'] == 2
    assert res['empty_fp_rate'] == pytest.approx(100 * 1 / 2)
    assert res['empty_fp_pixel_rate'] == pytest.approx(100 * (0 + 1 / 4) / 2)
    assert res['mIoU'] == pytest.approx(100 * (1 + 1 + 3 / 4) / 3, rel=1e-6)
    assert res['Fscore'] == pytest.approx(100.0)


def test_results_are_sorted_by_sample_idx():
    gen = torch.Generator().manual_seed(1)
    samples = []
    for i in range(6):
        gt = (torch.rand(2, 3, 3, generator=gen) > 0.5).long()
        logits = torch.randn(2, 3, 3, generator=gen) * 3
        samples.append(clip_sample(f'v{i}', gt=gt.tolist(), logits=logits.tolist(), sample_idx=i))
    ordered = AVSBenchMetric(legacy_videos_per_batch=4)
    shuffled = AVSBenchMetric(legacy_videos_per_batch=4)
    ordered.process({}, samples)
    permuted = samples[:]
    random.Random(0).shuffle(permuted)
    shuffled.process({}, permuted)
    assert ordered.compute_metrics(ordered.results) == shuffled.compute_metrics(shuffled.results)


def test_bad_samples_give_clear_errors():
    metric = AVSBenchMetric()
    no_logits = clip_sample('x', gt=[[[0, 1]]], pred=[[[0, 1]]])
    with pytest.raises(KeyError, match=r'seg_logits.*video .*x'):
        metric.process({}, [no_logits])
    unbinarised = clip_sample('y', gt=[[[0, 255]]], logits=[[[0.0, 1.0]]])
    with pytest.raises(ValueError, match="video 'y'.*only 0 and 1"):
        metric.process({}, [unbinarised])
    with pytest.raises(ValueError, match='legacy_videos_per_batch'):
        AVSBenchMetric(legacy_videos_per_batch=0)


def test_registered_and_runs_through_mmengine_evaluator_beside_ioumetric():
    evaluator = Evaluator(
        [
            METRICS.build(dict(type='AVSBenchMetric', legacy_videos_per_batch=2)),
            IoUMetric(iou_metrics=['mIoU'], prefix='mmseg'),
        ]
    )
    evaluator.dataset_meta = dict(classes=('background', 'sounding object'))
    samples = [clip_sample('a', **VIDEO_A), clip_sample('b', **VIDEO_B)]
    evaluator.process(samples)
    res = evaluator.evaluate(len(samples))
    assert res['legacy_Fscore'] == pytest.approx(100 * 13 / 23, rel=1e-6)
    assert res['mIoU'] == pytest.approx(25.0, rel=1e-6)
    # mmseg: totals over both frames. class 1: I 1, pred 3, gt 4 -> 1/6; class 0: I 2, pred 5, gt 4 -> 2/7
    assert res['mmseg/mIoU'] == pytest.approx(round(100 * (1 / 6 + 2 / 7) / 2, 2), abs=1e-9)


def test_mmseg_ioumetric_on_clip_samples():
    # T = 2 frames of 2x2. class 1 (sounding object): I 1, pred 2, gt 2 -> U 3 -> 1/3;
    # class 0: I 2 + 3 = 5, pred 6, gt 6 -> U 7 -> 5/7. mIoU = (1/3 + 5/7) / 2 = 11/21
    sample = clip_sample('v', gt=[[[1, 1], [0, 0]], [[0, 0], [0, 0]]], pred=[[[1, 0], [0, 0]], [[0, 0], [0, 1]]])
    metric = IoUMetric(iou_metrics=['mIoU', 'mDice', 'mFscore'])
    metric.dataset_meta = dict(classes=('background', 'sounding object'))
    res = run_metric(metric, [sample])
    assert res['mIoU'] == pytest.approx(round(100 * 11 / 21, 2), abs=1e-9)
    # Dice class 1: 2*1/(2+2) = 1/2; class 0: 2*5/(6+6) = 5/6
    assert res['mDice'] == pytest.approx(round(100 * (1 / 2 + 5 / 6) / 2, 2), abs=1e-9)


# ------------------------------------------------------------------------------------------------ AVSS
AVSS_CLASSES = ('background', 'guitar', 'dog', 'piano')


def avss_samples():
    """Clip 1: a real frame and a padded frame (whose raw prediction is garbage); clip 2: one real frame."""
    first = clip_sample(
        'v1m',
        gt=[[[0, 1, 1, 2]], [[0, 0, 0, 0]]],
        pred=[[[0, 1, 2, 2]], [[1, 1, 1, 1]]],
        frame_valid=[1, 0],
        gt_valid=[1, 0],
    )
    second = clip_sample('v2', gt=[[[1, 1, 1, 1]]], pred=[[[0, 0, 0, 0]]])
    return [first, second]


def test_avss_metric_accumulates_per_class_including_padded_frames():
    metric = METRICS.build(dict(type='AVSSMetric'))
    metric.dataset_meta = dict(classes=AVSS_CLASSES)
    res = run_metric(metric, avss_samples())
    # padded frame forced to background: perfect background sample. Per class (IoU, F):
    # bg (2/3, 2/3), guitar ((1/2 + 0)/2, (13/16 + 0)/2), dog (1/2, 13/23), piano never seen (0, 0); mean over 4
    assert res['mIoU'] == pytest.approx(100 * 17 / 48, rel=1e-9)
    assert res['Fscore'] == pytest.approx(100 * (2 / 3 + 13 / 32 + 13 / 23) / 4, rel=1e-9)


def test_avss_metric_without_forcing_padded_background():
    metric = AVSSMetric(force_padded_background=False)
    metric.dataset_meta = dict(classes=AVSS_CLASSES)
    res = run_metric(metric, avss_samples())
    # padded frame now predicts 'guitar' on background: bg gets a frame with IoU 0 and guitar one with IoU 0
    # bg: (1 + 0 + 0)/3; guitar: (1/2 + 0 + 0)/3; dog 1/2; piano 0
    assert res['mIoU'] == pytest.approx(100 * (1 / 3 + 1 / 6 + 1 / 2) / 4, rel=1e-9)


def test_avss_metric_default_71_classes_and_bad_labels():
    metric = AVSSMetric()
    assert metric.num_classes == 71
    res = run_metric(metric, avss_samples())
    assert res['mIoU'] == pytest.approx(100 * (2 / 3 + 1 / 4 + 1 / 2) / 71, rel=1e-9)
    bad = clip_sample('pad', gt=[[[0, 255]]], pred=[[[0, 0]]])
    with pytest.raises(ValueError, match="video 'pad'.*no ignore label"):
        metric.process({}, [bad])


def test_binary_metric_under_negative_audio():
    """Negative audio (silence / noise / off-screen): every frame's ground truth is empty, so the metric's
    empty-frame rates are the false positives. 1x4 frames; a frame with gt_valid 0 is not scored."""
    hi, lo = 200, -200
    samples = [
        clip_sample(
            'a',
            gt=[[[0, 0, 0, 0]]] * 3,
            gt_valid=[1, 1, 0],
            logits=[[[hi, lo, lo, lo]], [[lo, lo, lo, lo]], [[hi, hi, hi, hi]]],
        ),
        clip_sample('b', gt=[[[0, 0, 0, 0]]] * 2, logits=[[[hi, hi, hi, hi]], [[hi, hi, lo, lo]]]),
    ]
    res = run_metric(AVSBenchMetric(), samples)
    # scored frames predict 1, 0, 4 and 2 of 4 pixels: 3 of 4 frames get a mask, mean pixel share 7/16
    assert res['num_empty_frames'] == 4
    assert res['empty_fp_rate'] == pytest.approx(100 * 3 / 4)
    assert res['empty_fp_pixel_rate'] == pytest.approx(100 * (1 / 4 + 0 + 1 + 2 / 4) / 4)
    # IoU of an empty frame is its background accuracy (1 - pixel share); F is undefined on every frame -> 0
    assert res['mIoU'] == pytest.approx(100 * (3 / 4 + 1 + 0 + 2 / 4) / 4, rel=1e-6)
    assert res['Fscore'] == 0.0


@pytest.mark.parametrize('force', [True, False])
def test_avss_metric_empty_frame_false_positives(force):
    """AVSSMetric reports the same keys on real frames whose ground truth is all background; padded frames
    (frame_valid 0) never count, whatever the model predicted there."""
    samples = [
        clip_sample(
            'neg', gt=[[[0, 0, 0, 0]]] * 3, frame_valid=[1, 1, 0], pred=[[[0, 3, 3, 0]], [[0, 0, 0, 0]], [[2, 2, 2, 2]]]
        ),
        clip_sample('mix', gt=[[[0, 0, 1, 1]], [[0, 0, 0, 0]]], pred=[[[1, 1, 1, 1]], [[0, 0, 0, 2]]]),
    ]
    metric = AVSSMetric(force_padded_background=force)
    metric.dataset_meta = dict(classes=AVSS_CLASSES)
    res = run_metric(metric, samples)
    # empty real frames: 'neg' 1 (2 of 4 pixels non-background), 'neg' 2 (clean), 'mix' 2 (1 of 4)
    assert res['num_empty_frames'] == 3
    assert res['empty_fp_rate'] == pytest.approx(100 * 2 / 3)
    assert res['empty_fp_pixel_rate'] == pytest.approx(100 * (2 / 4 + 0 + 1 / 4) / 3)


def test_avss_metric_without_empty_frames():
    metric = AVSSMetric()
    metric.dataset_meta = dict(classes=AVSS_CLASSES)
    res = run_metric(metric, [clip_sample('v', gt=[[[1, 1, 0, 0]]], pred=[[[1, 1, 1, 1]]])])
    assert res['num_empty_frames'] == 0 and res['empty_fp_rate'] == 0.0 and res['empty_fp_pixel_rate'] == 0.0


def test_legacy_numbers_equal_official_loop_over_dataset_order_batches():
    """5 clips x 5 frames, 2 videos per batch (last batch partial): per-batch official functions, mean of batches."""
    from projects.ccformer.evaluation import functional as F

    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 5, 6, 6, generator=gen) * 3
    gt = (torch.rand(5, 5, 6, 6, generator=gen) > 0.6).long()
    gt[1, :2] = 0  # some empty frames
    gt[4] = 0  # the partial last batch has only empty frames -> its F is 0
    samples = [clip_sample(f'v{i}', gt=gt[i].tolist(), logits=logits[i].tolist()) for i in range(5)]
    res = run_metric(AVSBenchMetric(legacy_videos_per_batch=2), samples)
    batches = [slice(0, 2), slice(2, 4), slice(4, 5)]
    ious = [F.mask_iou_legacy(logits[b].flatten(0, 1), gt[b].flatten(0, 1)) for b in batches]
    fs = [F.fscore_legacy(logits[b].flatten(0, 1), gt[b].flatten(0, 1)) for b in batches]
    assert fs[2] == 0.0
    assert res['legacy_mIoU'] == pytest.approx(100 * sum(ious) / 3, rel=1e-6)
    assert res['legacy_Fscore'] == pytest.approx(100 * sum(fs) / 3, rel=1e-6)


@pytest.mark.parametrize('as_dicts', [True, False])
def test_output_dir_writes_predicted_masks(tmp_path, as_dicts):
    """``output_dir`` (set by mmseg's ``tools/test.py --out``) writes 0/255 PNGs (binary) / class indices (AVSS)."""
    import cv2

    metric = AVSBenchMetric(output_dir=str(tmp_path / 'bin'))
    run_metric(metric, [clip_sample('A', **VIDEO_A), clip_sample('B', **VIDEO_B)], as_dicts=as_dicts)
    assert cv2.imread(str(tmp_path / 'bin/A/A_1.png'), cv2.IMREAD_UNCHANGED).tolist() == [[255, 0, 0, 0]]
    assert cv2.imread(str(tmp_path / 'bin/B/B_1.png'), cv2.IMREAD_UNCHANGED).tolist() == [[255, 255, 0, 0]]
    metric = AVSSMetric(output_dir=str(tmp_path / 'sem'))
    metric.dataset_meta = dict(classes=AVSS_CLASSES)
    run_metric(metric, avss_samples(), as_dicts=as_dicts)
    assert cv2.imread(str(tmp_path / 'sem/v1m/v1m_1.png'), cv2.IMREAD_UNCHANGED).tolist() == [[0, 1, 2, 2]]
    assert not (tmp_path / 'sem/v1m/v1m_2.png').exists()  # padded frame


def test_frame_count_mismatch_names_the_video():
    """A prediction with another number of frames than the ground truth is a clear error naming the video (both
    metrics), not an IndexError."""
    short = clip_sample('vid_07', gt=[[[0, 1]], [[1, 1]], [[0, 0]]], logits=[[[1.0, 2.0]], [[1.0, 1.0]]])
    with pytest.raises(ValueError, match="video 'vid_07': seg_logits has 2 frames but gt_sem_seg has 3"):
        AVSBenchMetric().process({}, [short.to_dict()])
    semantic = clip_sample('uid_3', gt=[[[0, 1]], [[1, 1]]], pred=[[[0, 1]]])
    with pytest.raises(ValueError, match="video 'uid_3': pred_sem_seg has 1 frames but gt_sem_seg has 2"):
        METRICS.build(dict(type='AVSSMetric')).process({}, [semantic])
