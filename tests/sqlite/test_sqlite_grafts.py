"""The SQLite grafts: what each decides (driven directly in the kernel), what each saves
on real SQLite workloads against the defaults, and what it costs."""

from __future__ import annotations

import struct

import pytest

from vino.demo import sqlite as scenarios
from vino.demo.sqlite import Lab
from vino.errors import MessageRefused
from vino.kernel import params as kparams
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.sdk.build import sample_path
from vino.sqlite import workloads as wl
from vino.sqlite.advisor import OP_CHAIN, OP_KEEP, OP_MODE, chain_messages
from vino.sqlite.grafts import Plan
from vino.sqlite.session import Session

BS = kparams.BLOCK_SIZE


def _file(kernel: Kernel, user: User, nblocks: int) -> None:
    kernel.fs.create(user, "f", 0o600)
    with kernel.fs.open(user, "f", "w") as f:
        kernel.fs.write(f, bytes(nblocks * BS))
    kernel.cache.sync()
    kernel.cache.invalidate(kernel.device)


def _resident(kernel: Kernel, user: User, blocks: list[int]) -> list[int]:
    with kernel.fs.open(user, "f", "r") as f:
        inode = f.inode
    return [b for b in blocks
            if kernel.cache.is_resident(kernel.device, kernel.fs._bmap(inode, b))]


# ---- sqlite_readahead, in the kernel ---------------------------------------------------------

def test_readahead_follows_the_chain_and_bridges_small_gaps(kernel: Kernel,
                                                            alice: User) -> None:
    _file(kernel, alice, 64)
    with kernel.fs.open(alice, "f", "r") as f:
        g = kernel.graft(alice, "fs.readahead", sample_path("sqlite_readahead.wasm"), target=f)
        for msg in chain_messages([40, 10, 14, 30, 31, 50]):
            g.send(msg)
        for b in (40, 10):  # 10 follows 40 in the chain: a scan is recognised at 10
            kernel.fs.seek(f, b * BS)
            kernel.fs.read(f, BS)
        assert g.stats.aborts == {} and g.stats.commits >= 2
    # 14 is 3 blocks after 10: bridged (11..14); 30, 31 a new run; 50 follows.
    want = [11, 12, 13, 14, 30, 31, 50]
    assert _resident(kernel, alice, want) == want
    assert _resident(kernel, alice, [15, 29, 32]) == []  # nothing else was read


def test_readahead_does_nothing_for_a_lookup_unless_told_of_a_scan(kernel: Kernel,
                                                                   alice: User) -> None:
    _file(kernel, alice, 64)
    with kernel.fs.open(alice, "f", "r") as f:
        g = kernel.graft(alice, "fs.readahead", sample_path("sqlite_readahead.wasm"), target=f)
        for msg in chain_messages([20, 21, 22, 23]):
            g.send(msg)
        kernel.fs.seek(f, 20 * BS)
        kernel.fs.read(f, BS)  # a random leaf: no prefetch
        assert kernel.fs.stats.prefetches == 0
        g.send(struct.pack("<II", OP_MODE, 1))  # "a range scan starts"
        kernel.fs.seek(f, 5 * BS)
        kernel.fs.read(f, BS)  # block 5 has no successor: the sequential default
        kernel.fs.seek(f, 20 * BS)
        kernel.fs.read(f, BS)
        assert kernel.fs.stats.prefetches == 3  # 21, 22, 23 at once


@pytest.mark.parametrize("msg", [
    b"", b"\x01\x00\x00", struct.pack("<II", OP_CHAIN, 1) + bytes(4),
    struct.pack("<II", OP_CHAIN, 63) + bytes(4 * 63), struct.pack("<II", OP_MODE, 2),
    struct.pack("<III", OP_CHAIN, 3, 1),
])
def test_readahead_refuses_malformed_messages(kernel: Kernel, alice: User, msg: bytes) -> None:
    _file(kernel, alice, 4)
    with kernel.fs.open(alice, "f", "r") as f:
        g = kernel.graft(alice, "fs.readahead", sample_path("sqlite_readahead.wasm"), target=f)
        # Refused (the graft answers negatively: it stays), or too long for its buffer.
        with pytest.raises((MessageRefused, ValueError)):
            g.send(msg)
        assert g.state == "live"


# ---- sqlite_evict, in the kernel -------------------------------------------------------------

def test_evict_keeps_interior_pages_and_is_mru_during_a_scan(kernel: Kernel,
                                                             alice: User) -> None:
    frames = kernel.cache.nframes
    kernel.cache.min_resident = 0
    aspace = kernel.address_space(kernel.spawn(alice, "db"))
    g = kernel.graft(alice, "vm.evict", sample_path("sqlite_evict.wasm"), target=aspace)
    keep = [0, 1, 2]
    g.send(struct.pack("<II3I", OP_KEEP, 3, *keep))
    hot = list(range(10, 20))
    for v in keep + hot:
        aspace.touch(v)
    for v in range(100, 100 + frames):  # fill every frame: from now on A pays for itself
        aspace.touch(v)
    assert all(aspace.is_resident(v) for v in keep)  # interior pages survived LRU
    for v in hot:
        aspace.touch(v)
    g.send(struct.pack("<II", OP_MODE, 1))
    for v in range(1000, 1000 + 3 * frames):  # a long scan
        aspace.touch(v)
    g.send(struct.pack("<II", OP_MODE, 0))
    assert all(aspace.is_resident(v) for v in keep + hot)  # the scan ate only itself
    assert g.stats.aborts == {} and g.stats.commits > 3 * frames


def test_evict_refuses_an_unsorted_keep_set_and_keeps_the_old_one(kernel: Kernel,
                                                                  alice: User) -> None:
    aspace = kernel.address_space(kernel.spawn(alice, "db"))
    g = kernel.graft(alice, "vm.evict", sample_path("sqlite_evict.wasm"), target=aspace)
    g.send(struct.pack("<II2I", OP_KEEP, 2, 5, 7))
    # A refused message is not a failure: no remove_after margin is needed any more.
    with pytest.raises(MessageRefused):
        g.send(struct.pack("<II2I", OP_KEEP, 2, 7, 5))
    assert g.state == "live" and g.failures == 0


# ---- on SQLite: savings and costs -------------------------------------------------------------

def test_the_advisor_finds_every_interior_page_sqlite_has(lab: Lab) -> None:
    with lab.kernel("advisor") as (k, user), \
            Session(k, user, scenarios.DB, plan=Plan(advise=True)) as s:
        s.db.execute(f"pragma cache_size = {10 * lab.config.rows}")
        s.db.execute("select count(*), total(k) from t").fetchall()
        s.db.execute("select count(*) from t indexed by t_k where k >= 0").fetchall()
        want = {pg - 1 for (pg,) in s.db.execute(
            "select pageno from dbstat where pagetype = 'internal'")}
        adv = s.advisor
        assert adv is not None and want and set(adv.children) == want
        leaves = {pg - 1 for (pg,) in s.db.execute(
            "select pageno from dbstat where pagetype = 'leaf'")}
        assert {c for kids in adv.children.values() for c in kids} <= want | leaves


def test_readahead_graft_saves_requests_on_range_scans(lab: Lab) -> None:
    ra = scenarios.readahead(lab)
    d, told = ra["default"], ra["sqlite_readahead (told of scans)"]
    assert all(m.ok for m in ra.values())
    assert told.device["reads"] < d.device["reads"] and told.device_ms < d.device_ms
    g = told.grafts["fs.readahead"]
    assert g["commits"] > 0 and g["aborts"] == {} and g["graft_ns"] > 0
    assert ra["sqlite_readahead (detects scans)"].device["reads"] <= d.device["reads"]


def test_eviction_graft_saves_reads_when_scans_meet_a_hot_set(lab: Lab) -> None:
    ev = scenarios.eviction(lab)
    d, g = ev["default (clock)"], ev["sqlite_evict"]
    assert d.ok and g.ok
    assert g.device["reads"] < d.device["reads"] and g.device_ms < d.device_ms
    assert g.pool["hits"] > d.pool["hits"]
    st = g.grafts["vm.evict"]
    assert st["commits"] > 0 and st["aborts"] == {} and st["overhead_ns"] >= 0


def test_grafted_runs_replay_exactly(lab: Lab) -> None:
    runs = [lab.measure(f"replay-{i}", Plan(readahead=True, evict=True),
                        lambda s: wl.range_scans(s.db, lab.model, 5, 500))
            for i in range(2)]
    assert runs[0].device == runs[1].device and runs[0].cache == runs[1].cache
