"""bench.scale's arithmetic: the saturation point, memory slopes, the split of workspaces between
client processes, per-size latency windows."""

from __future__ import annotations

import array

import pytest

from bench.scale import _phase_stats, _saturation, _slope_per_hour, _split


def test_saturation_is_interpolated_where_p95_crosses_100_ms() -> None:
    sat = _saturation([(50.0, 20.0), (100.0, 60.0), (150.0, 140.0), (200.0, 900.0)])
    assert sat["edits_per_s"] == pytest.approx(125.0)
    assert sat["between"] == [100.0, 150.0]


def test_saturation_says_when_it_was_never_crossed_or_always_crossed() -> None:
    assert _saturation([(50.0, 20.0), (100.0, 60.0)]) == {
        "edits_per_s": None,
        "above": 100.0,
        "points": [(50.0, 20.0), (100.0, 60.0)],
    }
    assert _saturation([(50.0, 200.0), (100.0, 300.0)])["below"] == 50.0


def test_slope_is_per_hour_and_flat_for_a_constant_series() -> None:
    ts = [0.0, 60.0, 120.0, 180.0]
    assert _slope_per_hour(ts, [100.0, 101.0, 102.0, 103.0]) == pytest.approx(60.0)
    assert _slope_per_hour(ts, [5.0] * 4) == 0.0
    assert _slope_per_hour([1.0], [3.0]) == 0.0


def test_workspaces_are_split_whole_and_balanced_by_members() -> None:
    teams = [{"members": [0] * 50}] + [{"members": [0] * 10} for _ in range(10)]
    parts = _split(teams, 2)
    assert sorted(sum(len(t["members"]) for t in part) for part in parts) == [70, 80]
    assert sum(len(part) for part in parts) == 11


def test_phase_stats_count_deliveries_of_edits_sent_in_the_window_by_workspace_size() -> None:
    sizes = array.array("H", [10, 10, 50, 50, 10])
    sent = array.array("q", [5, 15, 15, 25, 19])
    lat = array.array("f", [1.0, 2.0, 3.0, 4.0, 5.0])
    stats = _phase_stats((sizes, sent, lat), 10, 20)
    assert stats["deliveries"] == 3
    assert stats["by_workspace_size"]["10"]["n"] == 2
    assert stats["by_workspace_size"]["50"]["p50"] == 3.0
