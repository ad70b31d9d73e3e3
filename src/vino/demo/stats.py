"""``vino stats``: every sample graft's workload on one kernel, then per-point statistics.

``stats_run(workdir)`` boots one kernel, installs each sample graft on its own
target (the ChaCha20 filter and stride read-ahead on one file, ``evict_keep`` on
an address space, ``sched_interactive`` on a group), runs each workload, and then
one misbehaving read-ahead graft (blocks past the end of its file: aborted for
``invalid_result`` and removed). It returns ``{"points": [...], "report": ...}``;
``render_stats`` prints the per-point table and the registry's report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vino.kernel import params
from vino.kernel.sched import cpu_hog, interactive_loop
from vino.report import plain_table
from vino.sdk.build import sample_path
from vino.workloads import booted, hostile_path, hot_set_message, pattern

__all__ = ["render_stats", "stats_run"]

BS = params.BLOCK_SIZE


def stats_run(workdir: Path) -> dict[str, Any]:
    """Run each sample graft's workload on one kernel, plus one misbehaving graft.

    Returns ``{"points": [per-point statistics], "report": Registry.report()}``: the
    report says what failed and why (here, a read-ahead graft that asks for blocks
    past the end of its file, aborted for ``invalid_result`` and removed).
    """
    with booted(workdir, "stats", frames=48) as k:
        alice = k.add_user("alice")
        proc = k.spawn(alice, "app", k.new_group(alice, "app"))
        k.fs.create(alice, "log", 0o600)
        data = pattern(64)
        with k.fs.open(proc, "log", "rw") as f:
            flt = k.graft(alice, "fs.filter", sample_path("chacha20_filter.wasm"), target=f.inode)
            flt.send(bytes(range(32)) + bytes(12))
            k.fs.write(f, data)
            k.graft(alice, "fs.readahead", sample_path("readahead_stride.wasm"), target=f)
            for b in reversed(range(64)):
                k.fs.seek(f, b * BS)
                k.fs.read(f, BS)
        aspace = k.address_space(proc)
        ev = k.graft(alice, "vm.evict", sample_path("evict_keep.wasm"), target=aspace)
        ev.send(hot_set_message(list(range(4))))
        for v in range(200):
            aspace.touch(v % 4)
            aspace.touch(100 + v)
        assert proc.group is not None
        for _ in range(3):
            k.sched.spawn(proc, cpu_hog())
        k.sched.spawn(proc, interactive_loop(200_000, 3_000_000), interactive=True)
        k.graft(alice, "sched.pick", sample_path("sched_interactive.wasm"), target=proc.group)
        k.sched.run(until_ns=k.clock.now_ns() + 500_000_000)
        k.fs.create(alice, "other", 0o600)
        with k.fs.open(proc, "other", "rw") as f:
            k.fs.write(f, data[: 4 * BS])
            k.graft(alice, "fs.readahead", hostile_path("readahead_out_of_range"),
                    target=f, name="readahead_out_of_range")
            k.fs.seek(f, 0)
            for _ in range(4):
                k.fs.read(f, BS)
        rows = []
        for name in sorted(k.points):
            st = k.registry.point_stats(name)
            rows.append({"point": name, **st.as_dict(),
                         "graft_us_per_call": st.graft_ns / 1e3 / max(st.commits, 1),
                         "overhead_us_per_call": st.overhead_ns / 1e3 / max(st.commits, 1)})
        return {"points": rows, "report": k.registry.report()}


def render_stats(stats: dict[str, Any]) -> str:
    """The per-point table, then the registry's report of what failed and why."""
    rows = stats["points"]
    table = [[r["point"], str(r["invocations"]), str(r["commits"]),
              ", ".join(f"{k}={v}" for k, v in r["aborts"].items()) or "-",
              f"{r['graft_us_per_call']:.2f}", f"{r['overhead_us_per_call']:.2f}"]
             for r in rows]
    return (plain_table(table, ["point", "invocations", "commits", "aborts", "graft µs/call",
                           "protection µs/call"])
            + "\n\nWhat failed and why (Registry.report()):\n" + str(stats["report"]))
