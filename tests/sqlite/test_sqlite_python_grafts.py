"""SQLite on vino with the Python twins of its grafts: the same decisions as the C grafts.

SQLite's runs on the kernel replay exactly (same device and cache counters for the
same plan), so the Python grafts, compiled by vino.pygraft, must give exactly the
counters the C grafts give, and the same query answers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vino.demo.sqlite import Lab
from vino.sdk.build import sample_path
from vino.sqlite import grafts as sqlite_grafts
from vino.sqlite import workloads as wl
from vino.sqlite.grafts import Plan


def test_python_readahead_and_evict_grafts_replay_the_c_grafts_exactly(lab: Lab) -> None:
    runs = [lab.measure(f"py-{python}", Plan(readahead=True, evict=True, python=python),
                        lambda s: wl.range_scans(s.db, lab.model, 5, 500))
            for python in (False, True)]
    c, py = runs
    assert c.ok and py.ok
    assert c.device == py.device and c.cache == py.cache and c.pool == py.pool
    for point in ("fs.readahead", "vm.evict"):
        assert py.grafts[point]["commits"] == c.grafts[point]["commits"] > 0
        assert py.grafts[point]["aborts"] == {} == c.grafts[point]["aborts"]



def test_a_lab_told_to_use_python_grafts_installs_the_python_twins(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def recording(name: str) -> Path:
        asked.append(name)
        return sample_path(name)

    monkeypatch.setattr(sqlite_grafts, "sample_path", recording)
    original = lab.config
    lab.config = dataclasses.replace(original, python_grafts=True)
    try:
        py = lab.measure("py-config", Plan(evict=True),
                         lambda s: wl.range_scans(s.db, lab.model, 3, 300))
    finally:
        lab.config = original
    c = lab.measure("c-config", Plan(evict=True),
                    lambda s: wl.range_scans(s.db, lab.model, 3, 300))
    assert asked == ["sqlite_evict.py", "sqlite_evict.wasm"]
    assert py.ok and c.ok and py.device == c.device
    assert py.grafts["vm.evict"]["commits"] == c.grafts["vm.evict"]["commits"] > 0
