"""Part 1 of ``vino demo``: what each sample graft changes on the kernel's own counters.

``part1(workdir, checks, out)`` runs each workload of ``vino.workloads`` with the
point's default policy and with the sample graft (its C build, or with
``python`` its Python twin), prints one table row per workload and records one
check per sample in ``checks``:

- read-ahead, on the 1996 disk and on the SSD: fewer device requests and less
  device time, the file read back intact, no abort;
- eviction: fewer faults on the hot pages and fewer faults overall;
- scheduling: the interactive thread's mean latency at least halved;
- encryption: ciphertext on disk (RFC 8439 ChaCha20), plaintext through the kernel,
  unreadable after a remount without the key and intact with it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from vino.console import Output
from vino.kernel.device import DISK_1996, SSD
from vino.report import Checks
from vino.workloads import (
    encryption_run,
    eviction_run,
    readahead_scan,
    sample,
    sched_run,
)

__all__ = ["part1"]


def part1(workdir: Path, checks: Checks, out: IO[str],
          say: Callable[[str], None] = lambda msg: None, python: bool = False) -> None:
    Output(out).heading("Part 1: what each sample graft changes")
    say("part 1: the sample grafts")
    if python:
        out.write("(the samples' Python twins, compiled by vino.pygraft)\n\n")
    rows = []
    for profile in (DISK_1996, SSD):
        d = readahead_scan(workdir, profile, graft=False)
        s = readahead_scan(workdir, profile, graft=True,
                           module=sample("readahead_stride", python))
        rows.append([f"read-ahead, backward scan, {profile.name}", "device requests",
                     str(d["requests"]), str(s["requests"]),
                     f"device time {d['device_ms']:.0f} ms -> {s['device_ms']:.0f} ms"])
        checks.check(f"read-ahead saves I/Os on {profile.name}",
                     s["requests"] < d["requests"] and s["device_ms"] < d["device_ms"]
                     and d["intact"] and s["intact"] and s["graft_aborts"] == 0,
                     f"{d['requests']} -> {s['requests']} requests")
    d = eviction_run(workdir, graft=False)
    s = eviction_run(workdir, graft=True, module=sample("evict_keep", python))
    rows.append(["eviction, hot set + scans", "faults on hot pages", str(d["hot_faults"]),
                 str(s["hot_faults"]), f"all faults {d['faults']} -> {s['faults']}"])
    checks.check("eviction graft keeps the important pages",
                 s["hot_faults"] < d["hot_faults"] and s["faults"] < d["faults"]
                 and d["intact"] and s["intact"] and s["graft_aborts"] == 0,
                 f"{d['hot_faults']} -> {s['hot_faults']}")
    d = sched_run(workdir, graft=False)
    s = sched_run(workdir, graft=True, module=sample("sched_interactive", python))
    rows.append(["scheduling, 1 interactive + 4 hogs", "interactive latency (mean)",
                 f"{d['mean_ms']:.1f} ms", f"{s['mean_ms']:.1f} ms",
                 f"p99 {d['p99_ms']:.1f} -> {s['p99_ms']:.1f} ms"])
    checks.check("scheduler graft favours the interactive thread",
                 s["mean_ms"] < d["mean_ms"] / 2 and s["graft_aborts"] == 0,
                 f"{d['mean_ms']:.1f} -> {s['mean_ms']:.1f} ms")
    e = encryption_run(workdir, module=sample("chacha20_filter", python))
    rows.append(["encryption filter (ChaCha20)", "plaintext on disk", "yes",
                 "yes" if e["plaintext_on_disk"] else "no",
                 "ciphertext = RFC 8439 ChaCha20" if e["ciphertext_matches"] else "MISMATCH"])
    checks.check("encryption: ciphertext on disk, plaintext through the kernel",
                 e["roundtrip"] and not e["plaintext_on_disk"] and e["ciphertext_matches"]
                 and e["remount_without_key"] and e["remount_with_key"]
                 and e["graft_aborts"] == 0)
    Output(out).table(rows, ["workload", "measure", "default", "with graft", "note"])
