"""Tenants: an innocent user's latency with and without a hostile tenant on the same kernel.

One kernel, one innocent user (bob) doing small file-system operations in a loop
(``stat`` of his file, a 4 KiB read, a 4 KiB write), and, in the hostile run, a
tenant (mallory) in another thread whose read-ahead graft calls ``now()`` forever
under the file system's lock, reinstalled each time it is removed, while a third
thread keeps the interpreter busy (GIL contention: the condition under which a
graft's wall time outgrows its CPU budget). Every run has the busy thread, so the
only difference is mallory. A third run exempts mallory from her share of others'
waits (she is made privileged, which exempts from it): the host before shares existed.

Reported per run: bob's operations, p50 / p99 / max latency in ms, mallory's
removals and her calls skipped because her share of others' waits was spent
(``Stats.throttled``, ``graft/hold.py``). Command::

    python -m vino.bench.tenants [SECONDS]

The bound a user can rely on (``docs/SAFETY.md``): one hold of the file-system lock
lasts the holder's own work plus ``HOLD_GRAFT_WALL_S`` per principal whose grafts it
runs, plus a tick and about two GIL hand-overs each.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from vino.errors import GraftRejected
from vino.graft import Quota
from vino.kernel import params
from vino.kernel.kernel import Kernel

BS: Final = params.BLOCK_SIZE
# mallory's read-ahead: now() forever (each call needs the GIL; behind a busy thread its
# wall time is many times its CPU time).
NOW_FOREVER: Final = """(module
  (import "vino" "now" (func $now (result i64)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_readahead") (result i32)
    (loop (drop (call $now)) (br 0)) (i32.const 0)))"""


def _percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(seconds: float, hostile: bool, workdir: Path, share: bool = True) -> dict[str, Any]:
    """bob's latencies for ``seconds``, with mallory attacking if ``hostile`` (held to
    her share of others' waits if ``share``, else exempt)."""
    k = Kernel.boot(workdir / f"{hostile}-{share}.img", nblocks=2048)
    try:
        bob = k.add_user("bob")
        mallory = k.add_user("mallory", Quota(cpu_call_s=1.0, cpu_total_s=1e6))
        mallory.principal.privileged = not share
        bproc, mproc = k.spawn(bob, "bob"), k.spawn(mallory, "mallory")
        for user, name in ((bob, "b"), (mallory, "m")):
            k.fs.create(user, name, 0o600)
            with k.fs.open(bproc if user is bob else mproc, name, "w") as f:
                k.fs.write(f, bytes([65 + len(name)]) * (8 * BS))
        stop = threading.Event()
        removals = 0

        def spin() -> None:
            while not stop.is_set():
                sum(range(100))

        def attack() -> None:
            nonlocal removals
            with k.fs.open(mproc, "m", "r") as f:
                while not stop.is_set():
                    try:
                        g = k.graft(mallory, "fs.readahead", NOW_FOREVER, target=f)
                    except GraftRejected:  # installing too fast: try again at once
                        continue
                    k.fs.seek(f, 0)
                    k.fs.read(f, 2 * BS)
                    if g.state != "live":
                        removals += 1
                    else:
                        g.remove()

        threads = [threading.Thread(target=spin)]
        if hostile:
            threads.append(threading.Thread(target=attack))
        for t in threads:
            t.start()
        lat: list[float] = []
        block = b"b" * BS
        with k.fs.open(bproc, "b", "rw") as f:
            end = time.perf_counter() + seconds
            i = 0
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                if i % 3 == 0:
                    k.fs.stat("b")
                elif i % 3 == 1:
                    k.fs.seek(f, (i % 8) * BS)
                    k.fs.read(f, BS)
                else:
                    k.fs.seek(f, (i % 8) * BS)
                    k.fs.write(f, block)
                lat.append(time.perf_counter() - t0)
                i += 1
                time.sleep(0.0005)
        stop.set()
        for t in threads:
            t.join()
        k.check_invariants()
        return {"ops": len(lat), "p50_ms": statistics.median(lat) * 1e3,
                "p99_ms": _percentile(lat, 0.99) * 1e3, "max_ms": max(lat) * 1e3,
                "removals": removals,
                "throttled": k.registry.point_stats("fs.readahead").throttled}
    finally:
        k.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 10.0
    with tempfile.TemporaryDirectory(prefix="vino-tenants-") as tmp:
        for hostile, share, what in ((False, True, "without the hostile tenant"),
                                     (True, True, "with the hostile tenant"),
                                     (True, False, "with it, exempt from her share")):
            r = run(seconds, hostile, Path(tmp), share)
            print(f"{what}: {r['ops']} ops, "
                  f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms, "
                  f"mallory's graft removed {r['removals']} times, "
                  f"skipped {r['throttled']} times (her share spent)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
