"""projects/ccformer/benchmark/timing.py and build.py: statistics, timing loop, barrier, config and inputs (CPU; no
timing asserted)."""

import os

import pytest
import torch

from projects.ccformer import benchmark as ub


def test_percentile_and_summarize_numbers():
    times = [0.4, 0.1, 0.3, 0.2, 0.5]
    assert ub.percentile(times, 50) == pytest.approx(0.3)
    assert ub.percentile(times, 10) == pytest.approx(0.14)
    assert ub.percentile(times, 90) == pytest.approx(0.46)
    s = ub.summarize(dict(times_s=times, wall_s=2.0, first_call_s=3.0, warmup_s=4.0), batch=2, frames=5)
    assert s['median_s'] == pytest.approx(0.3)
    assert s['clips_per_s'] == pytest.approx(2 / 0.3)
    assert s['frames_per_s'] == pytest.approx(10 / 0.3)
    assert s['s_per_clip'] == pytest.approx(0.15)
    assert s['wall_frames_per_s'] == pytest.approx(5 * 10 / 2.0)
    assert s['first_call_s'] == 3.0 and s['iters'] == 5


def test_time_steps_counts_calls_and_reports_first_call():
    calls = []
    timing = ub.time_steps(lambda: calls.append(1), iters=4, warmup=3, device=torch.device('cpu'))
    assert len(calls) == 7 and len(timing['times_s']) == 4
    assert all(t >= 0 for t in timing['times_s']) and timing['first_call_s'] >= 0


def test_barrier_single_process(tmp_path):
    calls = []
    timing = ub.time_steps(
        lambda: calls.append(1),
        iters=2,
        warmup=1,
        device=torch.device('cpu'),
        before_timing=lambda: ub.barrier(str(tmp_path), 1, 5.0),
    )
    assert len(calls) == 4  # warm-up, one re-warm after the barrier, two timed
    assert 'barrier_wait_s' in timing and not timing.get('barrier_timed_out')
    assert any(n.startswith('ready.') for n in os.listdir(tmp_path))


def test_missing_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.py.* does not exist'):
        ub.load_config(str(tmp_path / 'missing.py'))


def test_inputs_have_the_preprocessor_shapes():
    data = ub.make_inputs(2, 5, 32, torch.device('cpu'), torch.Generator().manual_seed(0))
    assert data['inputs'].shape == (2, 5, 3, 32, 32) and data['audio'].shape == (2, 5, 1, 96, 64)
    again = ub.make_inputs(2, 5, 32, torch.device('cpu'), torch.Generator().manual_seed(0))
    assert torch.equal(data['inputs'], again['inputs'])
