"""The native fast path against the ctypes path, side by side (``vino bench crossings``).

The fast path (``vino.graft.fastpath``) is chosen once per process, so the paths
are measured in child interpreters: each round starts one child per path, in
rotating order, and each child measures, interleaved, the same contenders as
``vino bench goals``' mechanism rows -- the raw call, the protected null graft, the
aborted call, one graft-callable call, the null graft ÷ the raw call (round by round
within the child, as goals takes it) -- plus two threads ÷ one thread, aggregate
calls per second, on the null graft; and, unless ``samples`` is off, each sample
graft's protected call (the subsystem's policy slot, goals' Total) and the same
policy as a pluggy hook, with their ratio. The paths:

- ``ctypes``: ``VINO_FASTPATH=python``, everything through ctypes and Python;
- ``crossings``: ``VINO_FASTPATH=crossings``, the crossings into and out of Wasm
  native (raw call, trampolines, epoch callback) but the protected call around
  them Python (``Graft.invoke``): the fast path before the protected call was native;
- ``native``: everything native (``fastpath.c``'s ``Protected`` for the common case).

A figure is the median over rounds; each ratio to ``native`` is taken round by round
and its median quoted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

from vino.bench.timing import Progress, ratio
from vino.report import markdown_table

PATHS: Final = ("ctypes", "crossings", "native")
_ENV: Final = {"ctypes": "python", "crossings": "crossings", "native": "native"}
CHILD_TIMEOUT_S: Final = 900
MEASURES: Final = ("raw_us", "null_us", "null_vs_raw", "abort_us", "callable_us", "two_threads")
LABELS: Final = {"raw_us": "raw call, µs", "null_us": "protected null graft, µs",
                 "null_vs_raw": "protected null graft ÷ raw call",
                 "abort_us": "aborted call (invalid result), µs",
                 "callable_us": "one graft-callable call, µs",
                 "two_threads": "2 threads ÷ 1 thread, null graft"}
PATH_LABELS: Final = {"ctypes": "ctypes path",
                      "crossings": "native crossings, protected call in Python",
                      "native": "native fast path"}


def measure(rounds: int, batch_s: float, thread_run_s: float,
            samples: bool = False) -> dict[str, Any]:
    """One child's figures (this process's path), medians over its own rounds."""
    from vino.bench import goals, paper, peers, setups
    from vino.bench.timing import Contender, interleave, plain
    from vino.graft import fastpath
    from vino.graft.sandbox import Sandbox

    m = goals.Mechanism()
    shared = Sandbox()
    booted: dict[str, setups.Setup] = {}
    with tempfile.TemporaryDirectory(prefix="vino-bench-crossings-") as tmp:
        try:
            cs = [*m.contenders(), Contender("abort", plain(m.point, "invalid", 1))]
            if samples:
                for key in paper.GRAFTS:
                    booted[key] = setups.build(key, Path(tmp), shared)
                pm = peers.plugin_manager(booted)
                for k, setup in booted.items():
                    cs += [Contender(f"{k}/total", plain(setup.hook, *setup.hook_args())),
                           Contender(f"{k}/pluggy",
                                     plain(peers.pluggy_hook(pm, k), *setup.args()))]
            s = interleave(cs, rounds, batch_s, min_calls=2)
            one = [goals.throughput(m.point, [("null", 0)], thread_run_s) for _ in range(rounds)]
            two = [goals.throughput(m.point, [("null", 0), ("null", 1)], thread_run_s)
                   for _ in range(rounds)]
            protected = m.null._native is not None
        finally:
            m.close()
            for b in booted.values():
                b.close()
            shared.close()
    per_callable = [max(0.0, (c - n) / goals.CALLABLE_CALLS)
                    for c, n in zip(s["calls"], s["null"], strict=True)]
    out: dict[str, Any] = {
        "raw_us": statistics.median(s["raw"]), "null_us": statistics.median(s["null"]),
        "null_vs_raw": ratio(s["null"], s["raw"]).median_us,  # as goals', round by round
        "abort_us": statistics.median(s["abort"]),
        "callable_us": statistics.median(per_callable),
        "two_threads": statistics.median(b / a for a, b in zip(one, two, strict=True)),
        "native": fastpath.native() is not None, "protected": protected, "samples": {}}
    for k in booted:
        out["samples"][k] = {"total_us": statistics.median(s[f"{k}/total"]),
                             "pluggy_us": statistics.median(s[f"{k}/pluggy"]),
                             "vs_pluggy": ratio(s[f"{k}/total"], s[f"{k}/pluggy"]).median_us}
    return out


def _child(path: str, rounds: int, batch_s: float, thread_run_s: float,
           samples: bool) -> dict[str, Any]:
    env = dict(os.environ)
    env["VINO_FASTPATH"] = _ENV[path]
    code = ("import json; from vino.bench.crossings import measure; "
            f"print(json.dumps(measure({int(rounds)}, {float(batch_s)}, {float(thread_run_s)}, "
            f"{bool(samples)})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False, timeout=CHILD_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"crossings child ({path}) failed: {proc.stderr.strip()[-500:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["native"] != (path != "ctypes") or out["protected"] != (path == "native"):
        raise RuntimeError(f"the {path} child ran another path (is the fast path built?)")
    return out


def run(rounds: int = 7, *, child_rounds: int = 3, batch_s: float = 0.02,
        thread_run_s: float = 0.2, samples: bool = True,
        progress: Progress | None = None) -> dict[str, Any]:
    """``rounds`` rounds, each one child per path in rotating order; plain data."""
    series: dict[str, dict[str, list[float]]] = {p: {} for p in PATHS}
    titles: dict[str, str] = {}
    for r in range(rounds):
        order = PATHS[r % len(PATHS):] + PATHS[:r % len(PATHS)]
        for path in order:
            got = _child(path, child_rounds, batch_s, thread_run_s, samples)
            for k in MEASURES:
                series[path].setdefault(k, []).append(got[k])
            for key, sample in got["samples"].items():
                for what in ("total_us", "pluggy_us", "vs_pluggy"):
                    series[path].setdefault(f"{key}/{what}", []).append(sample[what])
        if progress is not None:
            progress(f"crossings: round {r + 1}/{rounds}")
    if samples:
        from vino.bench import paper

        titles = {k: paper.TITLES[k] for k in paper.GRAFTS}
    keys = [*MEASURES, *(f"{k}/{w}" for k in titles for w in ("total_us", "vs_pluggy"))]
    figures: dict[str, Any] = {}
    for k in keys:
        f: dict[str, Any] = {p: statistics.median(series[p][k]) for p in PATHS}
        for p in ("ctypes", "crossings"):
            f[f"native_over_{p}"] = (ratio(series["native"][k], series[p][k]).median_us
                                     if any(v > 0 for v in series[p][k]) else None)
        figures[k] = f
    return {"rounds": rounds, "samples": titles, "figures": figures}


def _label(key: str, titles: dict[str, str]) -> str:
    if key in LABELS:
        return LABELS[key]
    sample, what = key.split("/")
    return (f"{titles[sample]}: protected call, µs" if what == "total_us" else
            f"{titles[sample]}: protected call ÷ pluggy hook")


def render(result: dict[str, Any]) -> str:
    def cell(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    return markdown_table(
        ["measure", *(PATH_LABELS[p] for p in PATHS), "native ÷ ctypes",
         "native ÷ native crossings"],
        ([_label(k, result["samples"]), *(cell(f[p]) for p in PATHS),
          cell(f["native_over_ctypes"]), cell(f["native_over_crossings"])]
         for k, f in result["figures"].items()))
