"""When does a graft pay? Device time it saves against the protection it costs.

For read-ahead and VM eviction, the sample workloads run on a fresh kernel with
the default policy and again with the sample graft, on both device profiles
(``DISK_1996`` and ``SSD`` from ``vino.kernel.device``):

- read-ahead: ``vino.workloads.readahead_scan`` (a 256-block file read backwards).
  Saved = the simulated device time of the default run minus the graft run's
  (``BlockDevice.stats.busy_ns``; fewer, larger requests, fewer seeks).
- VM eviction: ``vino.workloads.eviction_run`` (16 important pages re-used
  between scans of 64 cold pages, in 48 frames), with the graft's statistics.
  The reference kernel keeps swapped-out anonymous pages in host memory at no
  modelled cost, so faults are converted into device time by assumption:
  **each fault avoided saves one random 4 KiB page-in** from the profile
  (``profile.request_ns(PAGE_SIZE, sequential=False)``: 9.7 ms on the 1996
  disk, 88 µs on the SSD). Write-backs of the dirty important pages the default
  also evicts are not counted, so the saving is understated.

Protection spent = the larger of two estimates: the graft's own statistics
(``Stats.overhead_ns + Stats.graft_ns``: the wrapper timed on sampled calls,
scaled, plus time inside Wasm; dispatch excluded; for eviction the median over
``EVICT_REPEATS`` runs of the same trace, since a run of a few dozen calls has
only two or three sampled ones) and the measured Total per
call from the overhead table of the same run times the number of calls (the
whole protected call, dispatch and graft included). The ratio saved ÷ spent is
the answer: above 1 the graft pays.

The eviction graft answers with batches (one call names the victim and up to 31
more, docs/ABI.md), so it is called once per batch, not once per eviction. Each
eviction served from a batch without a call is counted too, at the kernel's
measured cost of one (``batched_decision_ns``: re-validating and taking the next
victim, plus its share of recording the batch), added to both estimates. The
faults compared are those of the same trace under the default policy and under
the graft, batches included: what the graft's choices save.

Beside it, the same eviction workload with the one-victim port of the sample
(``ONE_VICTIM``, the Zig ``evict_keep``: the same choices, one call per eviction, as
the sample made before batches) shows what batching changes, in the same run; its
protection spent is its own statistics' estimate (no Total of it is measured), and
it has no target.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from vino import workloads
from vino.bench import bench_quota
from vino.bench.timing import Progress
from vino.kernel import params
from vino.kernel.device import DISK_1996, SSD, DiskProfile
from vino.report import AT_LEAST, markdown_table, target
from vino.sdk.build import SAMPLES_DIR

PROFILES: Final = (DISK_1996, SSD)
EVICT_WORKLOAD: Final = "VM eviction (hot set + scans)"
ONE_VICTIM_WORKLOAD: Final = "VM eviction, one victim a call (no batches)"
ONE_VICTIM: Final = SAMPLES_DIR / "zig" / "evict_keep.wasm"  # answers without more[]
EVICT_REPEATS: Final = 5  # grafted eviction runs whose cost estimates give the median
BATCH_ROUNDS: Final = 101  # batches timed for batched_decision_ns (the median is kept)
QUICK_EVICT_ROUNDS: Final = 4
QUICK_RA_BLOCKS: Final = 64
QUICK_BATCH_ROUNDS: Final = 5

# Targets of the issue: saved ÷ spent.
MIN_RATIO: Final = {DISK_1996.name: 100.0, SSD.name: 10.0}


def _spent(stats_ns: float, calls: int, per_call_us: float | None,
           batched: int = 0, batched_ns: float = 0.0) -> dict[str, Any]:
    kernel_ns = batched * batched_ns
    measured = calls * per_call_us * 1e3 + kernel_ns if per_call_us is not None else None
    return {"stats_ns": stats_ns + kernel_ns, "measured_ns": measured,
            "spent_ns": max(stats_ns + kernel_ns, measured or 0.0),
            "batched": batched, "batched_ns": batched_ns}


def batched_decision_ns(rounds: int = BATCH_ROUNDS) -> float:
    """The kernel's time for one eviction served from a batch, ns (median of ``rounds``):
    re-validating and taking the next victim, plus 1/31 of what recording a batch of
    32 adds to the decision that asked the policy (against a one-victim answer).

    Timed on the cache's own decision (``Cache._choose_in``) over a full address
    space of ``EVICT_FRAMES`` pages, with policies that answer at once, so only the
    kernel's part is in it.
    """
    more = params.MAX_EVICT_MORE
    batch = list(range(1 + more))
    clock = time.perf_counter_ns
    per: list[float] = []
    with (tempfile.TemporaryDirectory(prefix="vino-bench-batch-") as tmp,
          workloads.booted(Path(tmp), "batch", frames=workloads.EVICT_FRAMES) as k):
        cache = k.cache
        aspace = k.address_space(k.spawn(k.add_user("batch"), "batch"))
        for v in range(workloads.EVICT_FRAMES):
            aspace.touch(v)
        for _ in range(rounds):
            cache.evict_policy = lambda a, c: 0
            t0 = clock()
            cache._choose_in(aspace)
            one = clock() - t0
            cache.evict_policy = lambda a, c: batch
            t0 = clock()
            cache._choose_in(aspace)  # asks the policy: records 31 further victims
            t1 = clock()
            for _ in range(more):
                cache._choose_in(aspace)  # each served from the batch
            t2 = clock()
            if cache.stats.batched % more or aspace._victims:
                raise AssertionError("savings: a batched victim was not taken")
            per.append((t2 - t1 + max(0, t1 - t0 - one)) / more)
    return statistics.median(per)


def run(workdir: Path | None = None, *, per_call_us: Mapping[str, float] | None = None,
        quick: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Both workloads on both profiles; ``per_call_us``: measured Totals by graft key."""
    per_call = dict(per_call_us or {})
    rounds = QUICK_EVICT_ROUNDS if quick else workloads.EVICT_ROUNDS
    nblocks = QUICK_RA_BLOCKS if quick else workloads.RA_FILE_BLOCKS
    with tempfile.TemporaryDirectory(prefix="vino-bench-save-") as tmp:
        wd = workdir or Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, Any]] = []
        for profile in PROFILES:
            d = workloads.readahead_scan(wd, profile, graft=False, nblocks=nblocks)
            s = workloads.readahead_scan(wd, profile, graft=True, nblocks=nblocks)
            spent = _spent(s["overhead_ms"] * 1e6, s["graft_calls"], per_call.get("readahead"))
            saved = (d["device_ms"] - s["device_ms"]) * 1e6
            rows.append(_row("read-ahead (backward scan)", profile, "device requests",
                             d["requests"], s["requests"], saved, spent, s["graft_calls"],
                             d["intact"] and s["intact"] and not s["graft_aborts"]))
            if progress:
                progress(f"savings: read-ahead on {profile.name}")
        d = workloads.eviction_run(wd, graft=False, rounds=rounds, quota=bench_quota(),
                                   with_cost=True)
        repeats = 1 if quick else EVICT_REPEATS
        s = _grafted_evictions(wd, rounds, None, repeats)
        o = _grafted_evictions(wd, rounds, ONE_VICTIM, repeats)
        batched_ns = batched_decision_ns(QUICK_BATCH_ROUNDS if quick else BATCH_ROUNDS)
        for profile in PROFILES:
            fault_ns = _fault_ns(profile)
            for name, g, spent in (
                    (EVICT_WORKLOAD, s, _spent(s["stats_overhead_ns"], s["graft_calls"],
                                               per_call.get("evict"), s["batched"],
                                               batched_ns)),
                    (ONE_VICTIM_WORKLOAD, o, _spent(o["stats_overhead_ns"], o["graft_calls"],
                                                    None, o["batched"], batched_ns))):
                row = _row(name, profile, "page faults", d["faults"], g["faults"],
                           (d["faults"] - g["faults"]) * fault_ns, spent, g["graft_calls"],
                           d["intact"] and g["intact"] and not g["graft_aborts"])
                row["fault_ns_assumed"] = fault_ns
                rows.append(row)
        if progress:
            progress("savings: VM eviction")
    return {"rows": rows, "targets": targets(rows)}


def _grafted_evictions(wd: Path, rounds: int, module: Path | None,
                       repeats: int) -> dict[str, Any]:
    """The eviction workload with a graft, ``repeats`` times: its (identical) counts, and
    the median of the graft statistics' estimate of its cost (sampled on 1 call in 16,
    so a run of a few dozen calls rests on two or three samples)."""
    runs = [workloads.eviction_run(wd, graft=True, rounds=rounds, quota=bench_quota(),
                                   with_cost=True, module=module) for _ in range(repeats)]
    if len({(r["faults"], r["graft_calls"], r["batched"]) for r in runs}) != 1:
        raise AssertionError("savings: the eviction workload took different turns")
    return {**runs[0], "intact": all(r["intact"] for r in runs),
            "graft_aborts": sum(r["graft_aborts"] for r in runs),
            "stats_overhead_ns": statistics.median(r["stats_overhead_ns"] for r in runs)}


def _fault_ns(profile: DiskProfile) -> int:
    """The assumed device cost of one page fault: one random 4 KiB read."""
    return profile.request_ns(params.PAGE_SIZE, sequential=False)


def _row(workload: str, profile: DiskProfile, measure: str, default: int, grafted: int,
         saved_ns: float, spent: dict[str, Any], calls: int, ok: bool) -> dict[str, Any]:
    spent_ns = spent["spent_ns"]
    return {"workload": workload, "profile": profile.name, "measure": measure,
            "default": default, "graft": grafted, "saved_device_ns": saved_ns,
            "graft_calls": calls, **spent,
            "saved_per_call_ns": saved_ns / calls if calls else None,
            "spent_per_call_ns": spent_ns / calls if calls else None,
            "ratio": saved_ns / spent_ns if spent_ns > 0 else None, "correct": ok}


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [target(f"{r['workload']} on {r['profile']}: device time saved ÷ protection spent",
                   r["ratio"], AT_LEAST, MIN_RATIO[r["profile"]], "x") for r in rows
            if r["workload"] != ONE_VICTIM_WORKLOAD]


def render(result: dict[str, Any]) -> str:
    rows = []
    for r in result["rows"]:
        ratio = f"{r['ratio']:,.0f}x" if r["ratio"] is not None else "n/a"
        measured = (f"{r['measured_ns'] / 1e6:,.2f}" if r["measured_ns"] is not None
                    else "-")
        per_saved = r["saved_per_call_ns"] or 0.0
        per_spent = r["spent_per_call_ns"] or 0.0
        rows.append([
            r["workload"], r["profile"], f"{r['measure']}: {r['default']} -> {r['graft']}",
            f"{r['saved_device_ns'] / 1e6:,.1f} ms",
            f"{r['graft_calls']} (+{r['batched']})" if r.get("batched") else r["graft_calls"],
            f"{r['spent_ns'] / 1e6:,.2f} ms ({r['stats_ns'] / 1e6:,.2f} / {measured})",
            f"{per_saved / 1e3:,.1f} µs", f"{per_spent / 1e3:,.1f} µs", ratio])
    return markdown_table(["workload", "device", "measure: default -> graft",
                           "device time saved", "graft calls (+ evictions from batches)",
                           "protection spent (stats / Total x calls)", "saved per call",
                           "spent per call", "saved ÷ spent"], rows)
