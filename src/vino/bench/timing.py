"""Interleaved timing: every contender measured round by round, side by side.

The machine these benchmarks run on is shared and noisy, so no contender is
measured in one long block: each *round* runs every contender once, for a batch
of calls sized to take about ``batch_s`` seconds (calibrated once, after a
warm-up), and records the mean time per call in that batch. A burst of noise
then slows one round of every contender rather than all rounds of one. A
figure is the median over rounds, with the spread p10..p90 over rounds; a ratio
between two contenders is taken round by round (both measured seconds apart)
and its median quoted.

A loaded machine also takes the benchmark off the CPU in the middle of a batch:
milliseconds of someone else's work land in one batch of one contender (one
segment of an instrumented call, even), and with few rounds the median cannot
outvote it -- a quick table once showed Begin above the whole call that contains
it. So a contender that runs on the calling thread alone (``Contender.on_cpu``)
has each batch's wall time compared with the thread's CPU time: a batch off the
CPU for more than ``OFF_CPU_SHARE`` of its wall time is run again, at most
``REDO_OFF_CPU`` times, and the run least off the CPU is kept (``measure``). Time
on the CPU is the code's, whatever it is (a garbage collection included).

A contender's batch function runs ``n`` calls and returns a mapping of series
name to µs per call: plain contenders return one series (``""``); instrumented
ones return one series per timed segment of the call.

Throughput across threads is ``threaded_rate``: the threads start together at a
barrier, each runs its batches back to back for a fixed wall time, and the
calls they made, summed, are divided by that time.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

NS_PER_US: Final = 1000.0
WARMUP_CALLS: Final = 50  # calls run once before calibrating a contender's batch size
MAX_BATCH_CALLS: Final = 200_000  # upper bound on calls in one batch
# An on-CPU contender's batch off the CPU for more than this share of its wall time was
# descheduled (the machine ran something else): it is run again (``measure``).
OFF_CPU_SHARE: Final = 0.2
REDO_OFF_CPU: Final = 4  # runs again at most; then the run least off the CPU is kept

_perf_ns = time.perf_counter_ns  # the batch's wall clock (tests inject fakes of both)
_thread_ns = time.thread_time_ns  # this thread's CPU time

Batch = Callable[[int], Mapping[str, float]]
Progress = Callable[[str], None]


@dataclass(slots=True, frozen=True)
class Figure:
    """The median and spread (p10..p90) over rounds of one series, µs per call."""

    median_us: float
    p10_us: float
    p90_us: float
    rounds: int

    def as_dict(self) -> dict[str, float]:
        return {"median_us": self.median_us, "p10_us": self.p10_us, "p90_us": self.p90_us,
                "rounds": self.rounds}


def spread(samples: Sequence[float]) -> Figure:
    """Median and p10..p90 of ``samples`` (one value per round)."""
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        v = samples[0]
        return Figure(v, v, v, 1)
    qs = statistics.quantiles(samples, n=10, method="inclusive")
    return Figure(statistics.median(samples), qs[0], qs[-1], len(samples))


def ratio(num: Sequence[float], den: Sequence[float]) -> Figure:
    """Round-by-round ratio ``num[i] / den[i]`` (same rounds), as a figure."""
    pairs = [(a, b) for a, b in zip(num, den, strict=True) if b > 0]
    return spread([a / b for a, b in pairs])


def difference(a: Sequence[float], b: Sequence[float], floor: float = 0.0) -> list[float]:
    """Round-by-round ``a[i] - b[i]``, never below ``floor``."""
    return [max(floor, x - y) for x, y in zip(a, b, strict=True)]


def loop(f: Callable[..., Any], args: tuple[Any, ...], n: int) -> float:
    """µs per call of ``f(*args)`` over ``n`` back-to-back calls."""
    perf = time.perf_counter_ns
    t = perf()
    for _ in range(n):
        f(*args)
    return (perf() - t) / n / NS_PER_US


def plain(f: Callable[..., Any], *args: Any) -> Batch:
    """A batch of plain calls ``f(*args)``: one series, ``""``."""
    def run(n: int) -> dict[str, float]:
        return {"": loop(f, args, n)}
    return run


def spaced(f: Callable[..., Any], args: tuple[Any, ...], gap_ns: int,
           timer_ns: float = 0.0) -> Batch:
    """A batch of calls ``f(*args)`` spaced ``gap_ns`` apart, the host busy in Python
    (spinning) between them; each call timed on its own, less ``timer_ns`` (the cost of
    the timestamp that falls inside each call's interval, ``timer_overhead_ns``), which a
    back-to-back batch spreads over all its calls. One series, ``""``."""
    def run(n: int) -> dict[str, float]:
        perf = time.perf_counter_ns
        spent = 0
        for _ in range(n):
            end = perf() + gap_ns
            while perf() < end:
                pass
            t = perf()
            f(*args)
            spent += perf() - t
        return {"": max(0.0, spent / n - timer_ns) / NS_PER_US}
    return run


@dataclass(slots=True)
class Contender:
    name: str
    batch: Batch
    calls: int = 0  # calls per round, set by calibration
    min_calls: int = 1
    # Runs on the calling thread alone (no I/O, no other thread or process to wait for),
    # so time off the CPU is the machine's, not the code's: such batches are run again.
    on_cpu: bool = False
    off_cpu_runs: int = 0  # batch runs found off the CPU (each run again, within limits)


def measure(c: Contender) -> Mapping[str, float]:
    """One batch of ``c`` (``c.calls`` calls); for an ``on_cpu`` contender, run again while
    it was off the CPU for more than ``OFF_CPU_SHARE`` of it (at most ``REDO_OFF_CPU``
    times; then the run least off the CPU)."""
    if not c.on_cpu:
        return c.batch(c.calls)
    kept: Mapping[str, float] = {}
    least = -1
    for _ in range(REDO_OFF_CPU + 1):
        w, t = _perf_ns(), _thread_ns()
        out = c.batch(c.calls)
        wall = _perf_ns() - w
        off = wall - (_thread_ns() - t)
        if off <= OFF_CPU_SHARE * wall:
            return out
        if least < 0 or off < least:
            kept, least = out, off
        c.off_cpu_runs += 1
    return kept


def _calibrate(c: Contender, batch_s: float, min_calls: int) -> None:
    perf = time.perf_counter_ns
    c.batch(min(WARMUP_CALLS, max(c.min_calls, min_calls)))  # warm caches and lazy paths
    n = max(c.min_calls, min_calls, 1)
    while True:
        t = perf()
        c.batch(n)
        took = (perf() - t) / 1e9
        if took >= batch_s / 4 or n >= MAX_BATCH_CALLS:
            break
        n *= 4
    per_call = took / n
    c.calls = int(min(MAX_BATCH_CALLS, max(c.min_calls, min_calls, batch_s / per_call)))


def interleave(contenders: Iterable[Contender], rounds: int, batch_s: float, *,
               min_calls: int = 5, progress: Progress | None = None,
               label: str = "") -> dict[str, list[float]]:
    """Run every contender once per round; return series name -> µs per call per round.

    A contender's series are named ``name`` (for ``""``) or ``name.segment``.
    """
    cs = list(contenders)
    for c in cs:
        _calibrate(c, batch_s, min_calls)
    out: dict[str, list[float]] = {}
    for r in range(rounds):
        for c in cs:
            for series, v in measure(c).items():
                out.setdefault(f"{c.name}.{series}" if series else c.name, []).append(v)
        if progress is not None:
            progress(f"{label}round {r + 1}/{rounds}")
    return out


def threaded_rate(batch: Callable[[int], Callable[[], int]], threads: int,
                  run_s: float) -> float:
    """Calls per second from ``threads`` threads started together: thread ``j`` runs
    ``batch(j)`` (a function that makes some calls and returns how many) over and
    over until ``run_s`` seconds have passed, and at least once: a thread the machine
    did not schedule before the stop still counts its batch (a rate is never 0)."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def work(j: int) -> None:
        run = batch(j)
        k = 0
        start.wait()
        k += run()
        while not stop.is_set():
            k += run()
        counts[j] = k

    ths = [threading.Thread(target=work, args=(j,), daemon=True) for j in range(threads)]
    for th in ths:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(run_s)
    stop.set()
    for th in ths:
        th.join()
    return sum(counts) / (time.perf_counter() - t0)


def timer_overhead_ns(samples: int = 20_001) -> float:
    """The cost, seen between two timestamps, of taking one (median, ns).

    Instrumented segments are bounded by two ``perf_counter_ns`` readings
    whose own cost falls inside the segment; this is subtracted from each.
    """
    perf = time.perf_counter_ns
    box = _Stamp()
    vals = []
    for _ in range(samples):
        box.a = perf()
        box.b = perf()
        vals.append(box.b - box.a)
    return float(statistics.median(vals))


class _Stamp:
    __slots__ = ("a", "b")

    def __init__(self) -> None:
        self.a = 0
        self.b = 0
