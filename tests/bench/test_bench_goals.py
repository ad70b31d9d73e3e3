"""The goals benchmark in quick mode: every goal row measured, checked and rendered
(structure only: no figure is asserted, the machine is shared)."""

from __future__ import annotations

from pathlib import Path

from vino.bench import goals
from vino.graft import fastpath


def test_quick_goals_report_every_row_with_its_goal_and_the_thread_scaling(
        tmp_path: Path) -> None:
    r = goals.run(goals.QUICK, workdir=tmp_path)
    rows = r["goals"]
    # 4 samples vs pluggy, null, null vs raw, graft-callable, 2 thread rows, 4 sparse,
    # install, eviction on SSD.
    assert len(rows) == 15
    assert {row["filed"] for row in rows} == set(goals.WHEN_FILED.values())
    for row in rows:
        assert row["value"] is not None and row["value"] >= 0, row  # 0: a quick difference
        assert row["ok"] == (row["value"] <= row["limit"] if row["op"] == "≤"
                             else row["value"] >= row["limit"])
    t = r["threads"]
    assert t["threads"] == [1, 2, 4, 8]
    for kind in ("null", "spin"):
        assert t["grafts"][kind]["1"]["vs_one_thread"] == 1.0
        assert all(t["grafts"][kind][str(n)]["calls_per_s"] > 0 for n in t["threads"])
    floor = r["figures"]["sparse_floor"]  # the same sparse pattern for a plain ctypes call
    assert floor["total_us"] > 0 and floor["sparse_us"] > 0
    for s in r["figures"]["samples"].values():  # beside the floor, split into its share
        assert {"sparse_extra_us", "sparse_floor_extra_us", "sparse_own_us",
                "sparse_at_floor", "pluggy_sparse_vs_back_to_back"} <= s.keys()
    native = r["figures"].get("sparse_native_floor")  # a C-extension call into Wasm
    if fastpath.native() is not None:
        assert native is not None and native["total_us"] > 0 and native["sparse_us"] > 0
        for s in r["figures"]["samples"].values():
            assert {"sparse_native_extra_us", "sparse_beyond_native_us",
                    "sparse_at_native_floor"} <= s.keys()
    text = goals.render(r)
    assert all(row["what"] in text for row in rows)
    assert "Sparse floor" in text
    assert ("Native floor" in text) == (native is not None)
    assert "vino's own" in text and "pluggy's ratio" in text
    assert "| 8 |" in text


def test_the_native_floor_is_a_c_extension_call_into_a_trivial_export() -> None:
    from vino.graft.sandbox import Sandbox

    sandbox = Sandbox()
    try:
        floor = goals.WasmFloor.make(sandbox)
        if fastpath.native() is None:
            assert floor is None
            return
        assert floor is not None
        assert type(floor.call).__name__ == "RawCall"  # the fast path's C type, no Python frame
        for _ in range(3):
            assert floor.call() == 0  # no error pointer: the deadline is far ahead
    finally:
        sandbox.close()


def test_native_penalty_splits_each_round_against_the_native_floor() -> None:
    p = goals.native_penalty(extra=[3.0, 4.0, 7.0], native_extra=[1.0, 1.0, 2.0],
                             total=[2.0, 2.0, 2.0])
    assert p["sparse_native_extra_us"] == 1.0
    assert p["sparse_beyond_native_us"] == 3.0  # median of 2, 3, 5
    assert p["sparse_at_native_floor"] == 1.5  # median of 1.5, 1.5, 2.0


def test_sparse_penalty_splits_each_round_into_the_floors_share_and_vinos_own() -> None:
    # Three rounds: a sample 2 µs back to back, 5 / 6 / 9 sparse; the floor's extra 2 / 1 / 3.
    p = goals.sparse_penalty(extra=[3.0, 4.0, 7.0], floor_extra=[2.0, 1.0, 3.0],
                             total=[2.0, 2.0, 2.0])
    assert p["sparse_extra_us"] == 4.0
    assert p["sparse_floor_extra_us"] == 2.0
    assert p["sparse_own_us"] == 3.0  # median of 1, 3, 4: round by round, not 4 - 2
    assert p["sparse_at_floor"] == 2.0  # median of (2 + 2) / 2, (2 + 1) / 2, (2 + 3) / 2
