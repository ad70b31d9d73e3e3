"""Scale in quick mode, and the pooling allocator that makes 100,000 grafts fit."""

from __future__ import annotations

from typing import Any

import pytest

from vino.bench import scale
from vino.errors import GraftRejected
from vino.graft import Principal
from vino.graft.sandbox import Pool, Sandbox
from vino.sdk.build import sample_path


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return scale.run((1, 10, 40), rounds=2, batch_s=0.0005, quick=True)


def test_every_configuration_is_measured(result: dict[str, Any]) -> None:
    names = set(result["configs"])
    assert names == {"default-1", "pool-1", "default-10", "pool-10", "default-40", "pool-40"}
    for d in result["configs"].values():
        assert d["call_hot"]["median_us"] > 0 and d["call_spread"]["median_us"] > 0
        assert d["install_us"]["median"] > 0
        assert d["linear_resident_per_graft_kib"] > 0  # each graft touched its memory
    assert result["configs"]["pool-1"]["call_hot_vs_one"] == 1.0


def test_the_pool_keeps_the_mapping_count_flat(result: dict[str, Any]) -> None:
    assert result["configs"]["default-40"]["maps_per_graft"] >= 1.5
    assert result["configs"]["pool-40"]["maps_per_graft"] < 0.5
    assert result["default_allocator_limit"]["grafts_at_limit"] < 65_530


def test_calls_per_second_from_one_and_two_threads(result: dict[str, Any]) -> None:
    c = result["calls_per_second"]
    assert c["threads_1"] > 0 and c["threads_2"] > 0
    assert len(result["targets"]) == 3
    assert "mappings per graft" in scale.render(result)


def test_a_full_pool_rejects_the_next_install_until_a_graft_is_removed() -> None:
    cfg = scale.build("pool-3", 3, pooled=True)
    reg, point = cfg.registry, cfg.point
    who = Principal("p", scale.BENCH_QUOTA)
    wasm = sample_path("readahead_stride.wasm").read_bytes()
    try:
        extra = [reg.install(point, wasm, who, target=100 + i) for i in range(scale.POOL_SPARE)]
        full = "the host holds its limit of 19 grafts \\(the pool's slots\\)"
        with pytest.raises(GraftRejected, match=full):
            reg.install(point, wasm, who, target=999)
        assert point(999, *scale.ARGS) == []  # nothing half-installed: the default answers
        extra[0].remove()
        reg.install(point, wasm, who, target=999)
        assert point(999, *scale.ARGS) == point(0, *scale.ARGS)
    finally:
        reg.close()


def test_a_graft_needing_more_memory_than_a_slot_is_rejected() -> None:
    cfg = scale.build("pool-0", 0, pooled=True)
    two_pages = """(module (memory (export "memory") 2)
      (func (export "vino_buffer") (result i32) i32.const 0)
      (func (export "vino_readahead") (result i32) i32.const 0))"""
    try:
        with pytest.raises(GraftRejected):
            cfg.registry.install(cfg.point, two_pages, Principal("p", scale.BENCH_QUOTA), 1)
    finally:
        cfg.registry.close()


@pytest.mark.parametrize("slots, memory", [(0, 65536), (4, 1000), (4, 0)])
def test_a_pool_must_have_slots_and_whole_pages(slots: int, memory: int) -> None:
    with pytest.raises(ValueError):
        Pool(slots, memory)


def test_resident_bytes_sees_touched_pages() -> None:
    s = Sandbox(pool=Pool(1))
    s.close()
    import mmap

    m = mmap.mmap(-1, 4 * 4096)
    m[0] = 1
    import ctypes

    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    assert scale.resident_bytes(base, 4 * 4096) >= 4096
    del base
    m.close()


def test_a_host_may_freeze_the_collector_while_installing_in_bulk() -> None:
    import gc

    cfg = scale.build("pool-12-frozen", 12, pooled=True, freeze_every=5)
    try:
        assert cfg.frozen and cfg.summary()["gc_frozen"]
        assert gc.get_freeze_count() > 0
        assert len(cfg.install_us) == 12 and cfg.point(11, *scale.ARGS) == cfg.point(0, *scale.ARGS)
    finally:
        cfg.registry.close()
        gc.unfreeze()


def test_install_can_be_timed_in_a_fresh_interpreter() -> None:
    d = scale.install_in_fresh_process(5, freeze_every=2)
    assert d["n"] == 5 and d["gc_frozen"] and d["install_us"]["mean"] > 0
    import gc

    assert scale.install_probe(3, pause_gc=True)["gc_paused"] and gc.isenabled()


def test_installs_are_compared_with_another_revisions_side_by_side() -> None:
    res = scale.compare_installs("HEAD", n=20, rounds=1)
    assert set(res["runs"]) == {"HEAD", "this tree"}
    for runs in res["runs"].values():
        assert len(runs) == 1 and runs[0]["n"] == 20 and runs[0]["install_us"]["mean"] > 0
    assert res["runs"]["this tree"][0]["install_cpu_us"] > 0
    assert "| HEAD | 1 |" in scale.render_comparison(res)
