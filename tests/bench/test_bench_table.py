"""The overhead table in quick mode: every row and peer present and sane (no timing targets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from vino.bench import paper, table, timing
from vino.bench import setups as bench_setups

from .bench_world import booted_setups

# Three: a median of two is their mean, which one round the machine slowed carries alone.
QUICK_ROUNDS = 3
QUICK_BATCH_S = 0.0005


@pytest.fixture(scope="module")
def setups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bench_setups.Setup]]:
    yield from booted_setups(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def result(setups: dict[str, bench_setups.Setup]) -> dict[str, Any]:
    messages: list[str] = []
    out = table.run(setups, rounds=QUICK_ROUNDS, batch_s=QUICK_BATCH_S, min_calls=2,
                    progress=messages.append)
    out["progress"] = messages
    return out


def test_every_row_of_the_paper_is_measured_for_every_graft(result: dict[str, Any]) -> None:
    assert set(result["grafts"]) == set(paper.GRAFTS)
    for key, g in result["grafts"].items():
        assert list(g["rows"]) == list(paper.ROWS)
        for row, d in g["rows"].items():
            if row == "Lock" and key in ("readahead", "encrypt"):
                assert d is None  # those points resolve no lock for grafts
                continue
            assert d is not None, (key, row)
            assert d["rounds"] == QUICK_ROUNDS
            assert d["p10_us"] <= d["median_us"] <= d["p90_us"]
            assert d["vino_1996_us"] == paper.VINO_1996_US[key][row]
            if row in ("Graft", "Indirection", "Lock"):
                assert d["median_us"] >= 0  # differences, clamped at zero
            else:
                assert d["median_us"] > 0, (key, row)


def test_total_is_measured_directly_and_covers_the_graft(
        result: dict[str, Any], setups: dict[str, bench_setups.Setup]) -> None:
    # Total times the policy slot itself, and each of its calls runs the sample graft:
    # counted, not timed (two rounds' medians of Total and of Graft, measured in different
    # batches, swapped places on a loaded machine).
    for key, s in setups.items():
        sample = s.grafts["sample"]
        before = sample.stats.commits
        for _ in range(5):
            s.hook(*s.hook_args())
        assert sample.stats.commits == before + 5, key
    for g in result["grafts"].values():
        rows = g["rows"]
        # Timed, in different batches: each batch the machine took off the CPU is measured
        # again (timing.measure), so a preemption inside Begin cannot outgrow Total.
        assert rows["Total"]["median_us"] > rows["Begin"]["median_us"]
        assert rows["Total"]["ratio_1996_over_vino"] > 1  # 1996 hardware was slower
        assert g["extra"]["aborted_call"]["median_us"] > 0
        assert g["extra"]["raw_call"]["median_us"] >= 0


def test_encryption_spends_its_time_in_the_graft(result: dict[str, Any]) -> None:
    rows = result["grafts"]["encrypt"]["rows"]
    assert rows["Graft"]["median_us"] > rows["Begin"]["median_us"]


def test_every_peer_is_measured_and_compared(result: dict[str, Any]) -> None:
    for key, g in result["grafts"].items():
        names = set(g["peers"])
        assert {"default", "python", "pluggy", "wasmtime public API", "worker process"} <= names
        if key == "encrypt":
            assert "python (pure)" in names
        for p in g["peers"].values():
            assert p["median_us"] > 0 and p["vino_over_peer"] > 0


def test_targets_are_listed_with_values_not_asserted(result: dict[str, Any]) -> None:
    assert result["targets"]
    for t in result["targets"]:
        assert set(t) == {"what", "value", "op", "limit", "unit", "ok"}
        assert isinstance(t["ok"], bool)


def test_progress_is_reported_round_by_round(result: dict[str, Any]) -> None:
    assert len([m for m in result["progress"] if "round" in m]) == QUICK_ROUNDS


def test_render_shows_every_row_and_peer(result: dict[str, Any]) -> None:
    text = table.render(result)
    for row in paper.ROWS:
        assert f"| {row} |" in text
    assert "wasmtime public API" in text and "worker process" in text


def test_the_benchmark_leaves_the_point_as_it_found_it(
        setups: dict[str, bench_setups.Setup], result: dict[str, Any]) -> None:
    for s in setups.values():
        assert s.point.table[s.targets["sample"]] is s.grafts["sample"]  # stub swapped back
        assert s.point(s.targets["sample"], *s.args()) == s.expected
        assert s.grafts["invalid"].state == "live"  # aborted every time, never removed
        assert not s.grafts["sample"].stats.aborts


def test_spread_and_ratio_are_round_by_round() -> None:
    f = timing.spread([1.0, 2.0, 3.0])
    assert f.median_us == 2.0 and f.p10_us <= 2.0 <= f.p90_us
    assert timing.ratio([2.0, 4.0], [1.0, 2.0]).median_us == 2.0
    assert timing.difference([1.0, 5.0], [2.0, 1.0]) == [0.0, 4.0]
