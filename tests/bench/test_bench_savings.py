"""When does it pay, in quick mode: both workloads, both profiles, savings positive."""

from __future__ import annotations

from pathlib import Path

from vino.bench import savings
from vino.kernel.device import DISK_1996


def test_quick_savings_cover_both_workloads_on_both_profiles(tmp_path: Path) -> None:
    r = savings.run(tmp_path, per_call_us={"readahead": 5.0, "evict": 5.0}, quick=True)
    rows = r["rows"]
    assert {(x["workload"].split()[0], x["profile"]) for x in rows} == {
        ("read-ahead", "disk-1996"), ("read-ahead", "ssd"), ("VM", "disk-1996"), ("VM", "ssd")}
    for x in rows:
        assert x["correct"]
        assert x["graft"] < x["default"]  # fewer requests / faults with the graft
        assert x["saved_device_ns"] > 0 and x["graft_calls"] > 0
        if x["workload"] != savings.ONE_VICTIM_WORKLOAD:  # no Total measured for it
            assert x["spent_ns"] >= x["measured_ns"] > 0
        assert x["spent_ns"] >= x["stats_ns"] > 0
        assert x["ratio"] > 0
        if x["workload"] == savings.EVICT_WORKLOAD:  # batches: one call serves many
            assert x["batched"] > 4 * x["graft_calls"]  # evictions, each counted at a
            assert x["batched_ns"] > 0  # measured cost
    one = {x["profile"]: x for x in rows if x["workload"] == savings.ONE_VICTIM_WORKLOAD}
    batch = {x["profile"]: x for x in rows if x["workload"] == savings.EVICT_WORKLOAD}
    for p, x in one.items():  # the same choices one call at a time: the same faults
        assert x["batched"] == 0 and x["graft"] == batch[p]["graft"]
        assert x["graft_calls"] > 4 * batch[p]["graft_calls"]
    disk = [x["ratio"] for x in rows if x["profile"] == "disk-1996"]
    ssd = [x["ratio"] for x in rows if x["profile"] == "ssd"]
    assert min(disk) > max(ssd) / 100  # a slower device makes a graft pay more
    assert len(r["targets"]) == 4
    assert "saved ÷ spent" in savings.render(r)


def test_a_fault_is_assumed_to_cost_one_random_page_read() -> None:
    ns = savings._fault_ns(DISK_1996)
    assert 9_000_000 < ns < 11_000_000
