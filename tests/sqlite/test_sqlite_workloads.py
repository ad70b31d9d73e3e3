"""The workloads on real SQLite: each right against the model, measured on the kernel's
counters, reproducible; and ``vino demo sqlite`` end to end (small)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vino.cli import MIN_SQLITE_ROWS, main
from vino.demo import sqlite as scenarios
from vino.demo.sqlite import Config, Lab
from vino.sqlite.workloads import Measure


@pytest.fixture(scope="module")
def measures(lab: Lab) -> dict[str, Measure]:
    return scenarios.workloads(lab)


def test_the_database_has_its_rows_and_fits_the_kernel(lab: Lab) -> None:
    assert lab.build.ok and lab.model.rows == 10_000
    assert lab.build.device["writes"] > 0 and lab.build.vfs["syncs"] > 0


@pytest.mark.parametrize("name", ["lookups", "range scans", "updates"])
def test_each_workload_answers_right_and_costs_device_time(
        measures: dict[str, Measure], name: str) -> None:
    m = measures[name]
    assert m.ok
    assert m.device["reads"] > 0 and m.device_ms > 0
    assert m.cache["hits"] + m.cache["misses"] > 0
    assert m.pool["hits"] + m.pool["misses"] > 0


def test_updates_write_journal_and_database(measures: dict[str, Measure]) -> None:
    m = measures["updates"]
    assert m.device["writes"] > 0 and m.vfs["syncs"] >= 2 * 20  # journal + db per commit
    assert m.vfs["deletes"] >= 20  # DELETE mode: one journal per transaction


def test_measurements_replay_exactly(lab: Lab) -> None:
    again = scenarios.workloads(lab)
    first = scenarios.workloads(lab)
    for name in ("lookups", "range scans", "updates"):
        assert again[name].device == first[name].device
        assert again[name].cache == first[name].cache


def test_vino_demo_sqlite_exits_0_when_every_check_holds(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["demo", "sqlite", "--rows", str(MIN_SQLITE_ROWS), "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "14 of 14 checks held." in out and "FAILED" not in out
    assert "sqlite_readahead" in out and "sqlite_evict" in out
    assert "Power cut" in out and "delete/extra/encrypted" in out


def test_vino_demo_sqlite_refuses_a_nonsense_row_count(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "sqlite", "--rows", "0"]) == 2


@pytest.mark.slow
def test_the_demo_at_100k_rows_holds_every_check(tmp_path: Path) -> None:
    import io

    out = io.StringIO()
    assert scenarios.run(out, tmp_path, Config()), out.getvalue()
