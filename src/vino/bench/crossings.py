"""The native fast path against the ctypes path, side by side (``vino bench crossings``).

The fast path (``vino.graft.fastpath``) is chosen once per process, so the two
paths are measured in child interpreters: each round starts one child per path
(``VINO_FASTPATH=python`` for ctypes), in alternating order, and each child
measures, interleaved, the same contenders as ``vino bench goals``' mechanism
rows -- the raw call, the protected null graft, the aborted call, one
graft-callable call -- plus two threads ÷ one thread, aggregate calls per
second, on the null graft. A figure is the median over rounds; the ratio
native ÷ ctypes is taken round by round and its median quoted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any, Final

from vino.bench.timing import Progress, ratio
from vino.report import markdown_table

PATHS: Final = ("ctypes", "native")
CHILD_TIMEOUT_S: Final = 600
MEASURES: Final = ("raw_us", "null_us", "abort_us", "callable_us", "two_threads")
LABELS: Final = {"raw_us": "raw call, µs", "null_us": "protected null graft, µs",
                 "abort_us": "aborted call (invalid result), µs",
                 "callable_us": "one graft-callable call, µs",
                 "two_threads": "2 threads ÷ 1 thread, null graft"}


def measure(rounds: int, batch_s: float, thread_run_s: float) -> dict[str, float]:
    """One child's figures (this process's path), medians over its own rounds."""
    from vino.bench import goals
    from vino.bench.timing import Contender, interleave, plain
    from vino.graft import fastpath

    m = goals.Mechanism()
    try:
        cs = [*m.contenders(), Contender("abort", plain(m.point, "invalid", 1))]
        s = interleave(cs, rounds, batch_s, min_calls=2)
        one = [goals.throughput(m.point, [("null", 0)], thread_run_s) for _ in range(rounds)]
        two = [goals.throughput(m.point, [("null", 0), ("null", 1)], thread_run_s)
               for _ in range(rounds)]
    finally:
        m.close()
    per_callable = [max(0.0, (c - n) / goals.CALLABLE_CALLS)
                    for c, n in zip(s["calls"], s["null"], strict=True)]
    return {"raw_us": statistics.median(s["raw"]), "null_us": statistics.median(s["null"]),
            "abort_us": statistics.median(s["abort"]),
            "callable_us": statistics.median(per_callable),
            "two_threads": statistics.median(b / a for a, b in zip(one, two, strict=True)),
            "native": fastpath.native() is not None}


def _child(path: str, rounds: int, batch_s: float, thread_run_s: float) -> dict[str, Any]:
    env = dict(os.environ)
    env["VINO_FASTPATH"] = "python" if path == "ctypes" else "native"
    code = ("import json; from vino.bench.crossings import measure; "
            f"print(json.dumps(measure({int(rounds)}, {float(batch_s)}, {float(thread_run_s)})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False, timeout=CHILD_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"crossings child ({path}) failed: {proc.stderr.strip()[-500:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["native"] != (path == "native"):
        raise RuntimeError(f"the {path} child ran the other path (is the fast path built?)")
    return out


def run(rounds: int = 7, *, child_rounds: int = 3, batch_s: float = 0.02,
        thread_run_s: float = 0.2, progress: Progress | None = None) -> dict[str, Any]:
    """``rounds`` rounds, each one child per path in alternating order; plain data."""
    series: dict[str, dict[str, list[float]]] = {p: {k: [] for k in MEASURES} for p in PATHS}
    for r in range(rounds):
        order = PATHS if r % 2 == 0 else tuple(reversed(PATHS))
        for path in order:
            got = _child(path, child_rounds, batch_s, thread_run_s)
            for k in MEASURES:
                series[path][k].append(got[k])
        if progress is not None:
            progress(f"crossings: round {r + 1}/{rounds}")
    return {"rounds": rounds, "figures": {
        k: {"ctypes": statistics.median(series["ctypes"][k]),
            "native": statistics.median(series["native"][k]),
            "native_over_ctypes": (ratio(series["native"][k], series["ctypes"][k]).median_us
                                   if any(v > 0 for v in series["ctypes"][k]) else None)}
        for k in MEASURES}}


def render(result: dict[str, Any]) -> str:
    f = result["figures"]
    return markdown_table(
        ["measure", "ctypes path", "native fast path", "native ÷ ctypes"],
        ([LABELS[k], f"{f[k]['ctypes']:.2f}", f"{f[k]['native']:.2f}",
          "n/a" if f[k]["native_over_ctypes"] is None else f"{f[k]['native_over_ctypes']:.2f}"]
         for k in MEASURES))
