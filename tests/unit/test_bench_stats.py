"""Benchmark statistics and bookkeeping: session-resampled intervals, failed turns, git state."""

from __future__ import annotations

import random

import pytest

from bench.common import TurnSample, bootstrap_median_diff, git_state, session_bootstrap
from simuser import Stamp

pytestmark = pytest.mark.unit


def test_session_bootstrap_is_wider_than_a_turn_bootstrap_when_sessions_differ() -> None:
    """Turns within a session move together (same room, same machine moment): resampling whole
    sessions gives the honest, wider interval; pooling turns would pretend to more data."""
    rng = random.Random(1)
    ours = [[1000.0 + 200 * k + rng.uniform(-5, 5) for _ in range(10)] for k in range(4)]
    base = [[1000.0 + 200 * k + rng.uniform(-5, 5) for _ in range(10)] for k in range(4)]
    by_session = session_bootstrap(ours, base, random.Random(2))
    pooled = bootstrap_median_diff(
        [v for s in ours for v in s], [v for s in base for v in s], random.Random(2)
    )
    assert by_session is not None
    assert pooled is not None
    width_sessions = by_session["ci95_high"] - by_session["ci95_low"]
    width_pooled = pooled["ci95_high"] - pooled["ci95_low"]
    assert width_sessions > 2 * width_pooled
    assert by_session["ci95_low"] <= by_session["value"] <= by_session["ci95_high"]
    assert by_session["sessions"] == 8


def test_session_bootstrap_of_one_agent_brackets_its_percentile() -> None:
    sessions = [[float(v) for v in range(100 * k, 100 * k + 10)] for k in range(1, 6)]
    p95 = session_bootstrap(sessions, None, random.Random(3), q=95)
    assert p95 is not None
    assert p95["ci95_low"] <= p95["value"] <= p95["ci95_high"]
    assert session_bootstrap([[], []], None, random.Random(3)) is None


def test_a_turn_with_a_timeout_is_a_failure_even_with_audio() -> None:
    t0 = Stamp(mono=10.0, wall_ms=0.0)
    audio = Stamp(mono=11.0, wall_ms=1000.0)
    timed_out = TurnSample("q", t0, t0, first_audio=audio, error="timeout: answer")
    assert not timed_out.ok
    assert timed_out.latency_ms is None
    assert timed_out.to_dict()["ok"] is False
    fine = TurnSample("q", t0, t0, first_audio=audio)
    assert fine.ok
    assert fine.latency_ms == pytest.approx(1000.0)


def test_git_state_names_the_commit_and_dirtiness() -> None:
    state = git_state()
    assert state["git_commit"] is None or len(state["git_commit"]) == 40
    assert state["git_dirty"] in (True, False, None)


def _turn(kind: str, cut: bool, latency: float | None, failed: bool = False) -> dict[str, object]:
    return {"kind": kind, "pause_ms": 500 if kind == "paused" else 0, "cut_off": cut,
            "latency_ms": latency, "failed": failed, "answered_expected": True}  # fmt: skip


def test_eot_score_counts_cutoffs_on_paused_turns_and_chooses_the_fastest_within_budget() -> None:
    from bench.eot_sweep import choose, score, wilson

    careful = {"turns": [_turn("paused", False, 1500.0)] * 10 + [_turn("complete", False, 1400.0)],
               "load_1min": [1.0]}  # fmt: skip
    hasty = {"turns": [_turn("paused", True, None)] * 3 + [_turn("paused", False, 800.0)] * 7,
             "load_1min": []}  # fmt: skip
    lost = {"turns": [_turn("paused", False, 700.0)] * 9 + [_turn("paused", False, None, True)],
            "load_1min": []}  # fmt: skip
    results = [{"score": score(r, 11)} for r in (careful, hasty, lost)]
    assert results[0]["score"]["false_cutoff_rate"] == 0.0
    assert results[1]["score"]["false_cutoff_rate"] == 0.3
    assert results[1]["score"]["latency_ms"]["n"] == 7  # cut-off turns have no latency
    assert results[2]["score"]["failed_turns"] == 2  # one lost, one never run
    # `hasty` is fast but over budget, `lost` is fastest but failed turns: `careful` wins.
    assert choose(results, 0.10) == 0
    low, high = wilson(0, 15)
    assert low == 0.0
    assert 0.15 < high < 0.25
