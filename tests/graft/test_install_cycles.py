"""Removal gives back what install took, however many times a host does both.

What if a host installs and removes grafts all day (one per open file, say)? Each
install makes a store, an instance, its memory, a buffer window and the graft's
records; each removal must give back every one of them: the store at once (its
memory and its pool slot, without waiting for the cyclic collector), the Python
objects by the next collection. Measured as the process's resident memory and
the collector's count of objects, before and after many cycles; the bounded
version runs in CI, the 100,000-cycle one is ``slow``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import wasmtime

from vino.errors import GraftRejected
from vino.graft import Registry
from vino.graft.sandbox import Pool, Sandbox
from vino.testing.world import Host, declare_points, tenant

from .graft_world import World, pick_returning

MIB = 1 << 20
WARM_UP = 300  # cycles before the first measurement: caches and allocator pools filled


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _footprint() -> tuple[int, int]:
    gc.collect()
    return _rss(), len(gc.get_objects())


def _cycles(w: World, wasm: bytes, n: int) -> None:
    for i in range(n):
        w.install(wasm, w.root, f"t{i}").remove()


def _leaves_nothing_behind(w: World, cycles: int, rss_bound: int) -> None:
    wasm = bytes(wasmtime.wat2wasm(pick_returning(5)))
    _cycles(w, wasm, WARM_UP)
    rss0, objects0 = _footprint()
    _cycles(w, wasm, cycles)
    rss1, objects1 = _footprint()
    assert w.registry.grafts() == [] and w.registry.sandbox.live == 0
    assert w.root.usage.memory_bytes == 0 and w.root.usage.handles == 0
    # A leak of one object per cycle shows as `cycles` objects; of one store, as
    # its 64 KiB linear memory per cycle.
    assert objects1 - objects0 < 100, (objects0, objects1)
    assert rss1 - rss0 < rss_bound, f"{(rss1 - rss0) / MIB:.1f} MiB after {cycles} cycles"


def test_installing_and_removing_a_graft_2000_times_leaves_nothing_behind(world: World) -> None:
    _leaves_nothing_behind(world, 2_000, 8 * MIB)


@pytest.mark.slow
def test_installing_and_removing_a_graft_100000_times_leaves_nothing_behind(
        world: World) -> None:
    _leaves_nothing_behind(world, 100_000, 16 * MIB)


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_removed_grafts_pool_slot_is_free_at_once_without_the_collector(
        no_collector: None) -> None:
    # Two slots in wasmtime's pool, more allowed by the sandbox: a third graft reaches
    # the pool and finds it full. If removal left a store for the collector (which is
    # off) to free, the next round could not install.
    reg = Registry(sandbox=Sandbox(pool=Pool(2, share=4), max_grafts=4))
    try:
        w = _world_over(reg)
        wasm = bytes(wasmtime.wat2wasm(pick_returning(5)))
        for round_no in range(200):
            a, b = (w.install(wasm, w.root, f"{round_no}.{k}") for k in range(2))
            with pytest.raises(GraftRejected, match="instantiation failed"):
                w.install(wasm, w.root, f"{round_no}.full")
            assert w.pick(f"{round_no}.1", 0) == 5
            a.remove()
            b.remove()
    finally:
        reg.close()


def _world_over(reg: Registry) -> World:
    """A ``World`` (its points, host and principals) over ``reg``."""
    host = Host()
    pick, event = declare_points(reg, host, "test")
    alice, root = tenant("alice"), tenant("root", privileged=True)
    return World(reg, host, pick, event, alice, root, [alice, root])
