"""Claims about the sample grafts inside the kernel: each one beats the default on its
workload, measured on the kernel's own counters; and grafts that *extend* the default
through the ``default()`` graft-callable behave exactly as the default plus their change.

The workloads are those of ``vino demo`` (``vino.demo``); the assertions here are on
the numbers, not on the demo's verdicts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from vino import workloads
from vino.graft import Graft
from vino.kernel.device import DISK_1996, SSD, DiskProfile
from vino.kernel.errors import FilterUnavailable
from vino.kernel.fs import sequential_readahead
from vino.kernel.kernel import Kernel
from vino.kernel.sched import Cpu, Wait
from vino.sdk.build import sample_path

from .kernel_world import (
    BS,
    Boot,
    cold,
    make_file,
    pattern,
    read_blocks,
    read_file,
    unwire,
    wat,
)

# ---- read-ahead: readahead_stride ----------------------------------------------------------

@pytest.mark.parametrize("profile", [DISK_1996, SSD], ids=lambda p: p.name)
def test_stride_readahead_makes_a_backward_scan_cheaper(tmp_path: Path,
                                                        profile: DiskProfile) -> None:
    d = workloads.readahead_scan(tmp_path, profile, graft=False, nblocks=128)
    s = workloads.readahead_scan(tmp_path, profile, graft=True, nblocks=128)
    assert d["intact"] and s["intact"]
    assert s["graft_calls"] > 0 and s["graft_aborts"] == 0
    # The default sees no sequential run and fetches one block per request.
    assert d["requests"] >= 128
    assert s["requests"] * 4 < d["requests"]
    assert s["device_ms"] * 2 < d["device_ms"]


def test_stride_readahead_learns_a_forward_stride(boot: Boot) -> None:
    """Every third block: the default never prefetches; the graft has each block cached
    before it is read, and fetches nothing that is not then read."""
    order = list(range(0, 96, 3))
    data = pattern(96)
    seen: dict[bool, dict[str, int]] = {}
    for graft in (False, True):
        k = boot(f"stride-{graft}", frames=128)
        proc = make_file(k, k.add_user("alice"), "f", data)
        cold(k)
        reads0 = k.device.stats.reads
        with k.fs.open(proc, "f", "r") as f:
            if graft:
                k.graft(proc.user, "fs.readahead", sample_path("readahead_stride.wasm"),
                        target=f)
            got = read_blocks(k, f, order)
        assert got == b"".join(data[b * BS:(b + 1) * BS] for b in order)
        seen[graft] = {"reads": k.device.stats.reads - reads0, **k.fs.stats.snapshot(),
                       "unused": k.cache.stats.prefetch_unused}
        k.check_invariants()
    assert seen[False]["prefetch_hits"] == 0
    # The pattern is recognised at the third read; every later block was prefetched.
    assert seen[True]["prefetch_hits"] == len(order) - 3
    assert seen[True]["unused"] == 0
    assert seen[True]["reads"] <= seen[False]["reads"]


# ---- eviction: evict_keep ------------------------------------------------------------------

def test_keep_important_eviction_keeps_the_hot_pages(tmp_path: Path) -> None:
    d = workloads.eviction_run(tmp_path, graft=False)
    s = workloads.eviction_run(tmp_path, graft=True)
    assert d["intact"] and s["intact"]
    assert s["graft_calls"] > 0 and s["graft_aborts"] == 0
    assert d["hot_faults"] > 0
    assert s["hot_faults"] == 0
    assert s["faults"] < d["faults"]


# ---- scheduling: sched_interactive -----------------------------------------------------------

def test_interactive_scheduling_lowers_the_interactive_threads_latency(tmp_path: Path) -> None:
    d = workloads.sched_run(tmp_path, graft=False)
    s = workloads.sched_run(tmp_path, graft=True)
    assert s["graft_calls"] > 0 and s["graft_aborts"] == 0
    assert d["samples"] > 10 and s["samples"] > 10
    assert s["mean_ms"] * 2 < d["mean_ms"]
    assert s["p99_ms"] < d["p99_ms"]
    # With the graft it waits at most one hog's quantum (10 ms).
    assert s["p99_ms"] <= 10.0


# ---- encryption: chacha20_filter ----------------------------------------------------------

KEY = hashlib.sha256(b"test key").digest()
NONCE = hashlib.sha256(b"test nonce").digest()[:12]


def _chacha20(data: bytes, key: bytes = KEY, nonce: bytes = NONCE) -> bytes:
    """RFC 8439 ChaCha20, counter 0: cryptography's 16-byte nonce is counter || nonce."""
    cipher = Cipher(algorithms.ChaCha20(key, bytes(4) + nonce), None)
    return cipher.encryptor().update(data)


def _install_key(k: Kernel, f: Any, key: bytes = KEY, sample: str = "chacha20_filter") -> Graft:
    g = k.graft(f.user, "fs.filter", sample_path(f"{sample}.wasm"), target=f.inode)
    assert g.send(key + NONCE) == 0
    return g


# Three builds of the same filter: SIMD, scalar, and on the kernel's cipher. A file written
# through one reads back through another.
@pytest.mark.parametrize(("writer", "reader"), [
    ("chacha20_filter", "chacha20_kernel"), ("chacha20_kernel", "chacha20_filter_scalar"),
    ("chacha20_filter_scalar", "chacha20_filter")])
def test_encryption_filter_stores_only_chacha20_ciphertext(boot: Boot, writer: str,
                                                           reader: str) -> None:
    k = boot("crypt")
    alice = k.add_user("alice")
    proc = k.spawn(alice, "vault")
    k.fs.create(alice, "secret", 0o600)
    secret = (b"Attack at dawn; the password is swordfish. " * 400)[: 3 * BS + 1000]
    patch = b"<unaligned overwrite across a block boundary>" * 3
    plain = bytearray(secret)
    plain[BS - 50: BS - 50 + len(patch)] = patch
    with k.fs.open(proc, "secret", "rw") as f:
        g = _install_key(k, f, sample=writer)
        k.fs.write(f, secret)
        k.fs.seek(f, BS - 50)  # read-modify-write of two blocks through the filter
        k.fs.write(f, patch)
        k.fs.seek(f, 0)
        assert k.fs.read(f, 4 * BS) == plain
    assert g.state == "live" and g.stats.commits > 0 and not g.stats.aborts
    image = boot.image(k)
    k2 = boot.remount(k)
    raw = image.read_bytes()
    assert b"swordfish" not in raw and b"unaligned overwrite" not in raw
    # Every stored block is the keystream XOR the block (zero-padded past the end).
    padded = bytes(plain) + bytes(-len(plain) % BS)
    cipher = _chacha20(padded)
    assert all(cipher[i:i + BS] in raw for i in range(0, len(padded), BS))
    # A new kernel without the graft refuses the read (the seal is stored in the inode:
    # no stored form as data); with the key, the plaintext.
    alice2 = k2.add_user("alice")
    with pytest.raises(FilterUnavailable):
        read_file(k2, alice2, "secret")
    with k2.fs.open(alice2, "secret", "r") as f:
        _install_key(k2, f, sample=reader)
        assert k2.fs.read(f, 4 * BS) == plain
    k2.check_invariants()


def test_encryption_filter_with_the_wrong_key_reads_no_plaintext(boot: Boot) -> None:
    k = boot("crypt")
    alice = k.add_user("alice")
    proc = k.spawn(alice, "vault")
    k.fs.create(alice, "secret", 0o600)
    secret = b"swordfish " * 500
    with k.fs.open(proc, "secret", "rw") as f:
        _install_key(k, f)
        k.fs.write(f, secret)
    k2 = boot.remount(k)
    alice2 = k2.add_user("alice")
    with k2.fs.open(alice2, "secret", "r") as f:
        _install_key(k2, f, key=bytes(32))
        got = k2.fs.read(f, len(secret))
    assert len(got) == len(secret) and b"swordfish" not in got
    assert got == _chacha20(_chacha20(secret), key=bytes(32))


# ---- extend, not replace: the default() graft-callable -----------------------------------

DEFAULT = '(import "vino" "default" (func $default (result i32)))'

RA_SAME = wat("fs.readahead", "(call $default)", imports=DEFAULT)
RA_DROP_LAST = wat("fs.readahead", """(local $n i32)
    (local.set $n (call $default))
    (if (result i32) (i32.gt_s (local.get $n) (i32.const 0))
      (then (i32.sub (local.get $n) (i32.const 1)))
      (else (i32.const 0)))""", imports=DEFAULT)

NBLOCKS = 48


def _sequential(boot: Boot, name: str, source: str | None) -> tuple[Kernel, Graft | None,
                                                                    list[bool]]:
    """Scan a file block by block; after block 1, which of blocks 0..10 are cached?"""
    k = boot(name, frames=128)
    data = pattern(NBLOCKS)
    proc = make_file(k, k.add_user("alice"), "f", data)
    cold(k)
    with k.fs.open(proc, "f", "r") as f:
        g = k.graft(proc.user, "fs.readahead", source, target=f) if source else None
        got = read_blocks(k, f, [0, 1])
        cached = [k.cache.is_resident(k.device, k.fs._bmap(f.inode, b)) for b in range(11)]
        got += read_blocks(k, f, list(range(2, NBLOCKS)))
    assert got == data
    k.check_invariants()
    return k, g, cached


def test_a_graft_returning_defaults_answer_behaves_exactly_like_the_default(boot: Boot) -> None:
    base, _, base_cached = _sequential(boot, "base", None)
    k, g, cached = _sequential(boot, "same", RA_SAME)
    # Closing the file removed its graft (a graft lives no longer than its target), cleanly.
    assert g is not None and g.state == "removed" and g.removal is None
    assert g.stats.commits == NBLOCKS and not g.stats.aborts
    assert cached == base_cached == [True] * 10 + [False]  # 0, 1 read; 2..9 prefetched
    assert k.fs.stats.snapshot() == base.fs.stats.snapshot()
    assert k.device.stats.snapshot() == base.device.stats.snapshot()


def test_a_graft_that_drops_the_last_block_of_the_defaults_answer(boot: Boot) -> None:
    base, _, _ = _sequential(boot, "base", None)
    k, g, cached = _sequential(boot, "drop", RA_DROP_LAST)
    # Closing the file removed its graft (a graft lives no longer than its target), cleanly.
    assert g is not None and g.state == "removed" and g.removal is None
    assert g.stats.commits == NBLOCKS and not g.stats.aborts
    assert cached == [True] * 9 + [False, False]  # block 9, the window's last, was dropped
    # Replay the default's answers: the graft asked for one block fewer in every window.
    answers = [len(sequential_readahead(NBLOCKS, b, list(range(b, max(b - 16, -1), -1)), 8))
               for b in range(NBLOCKS)]
    windows = sum(1 for n in answers if n)
    assert base.fs.stats.readahead_blocks == sum(answers)
    assert k.fs.stats.readahead_blocks == sum(answers) - windows
    # Dropped blocks are read on demand (unless the next window asks for them again).
    assert k.fs.stats.prefetch_hits < base.fs.stats.prefetch_hits
    assert base.device.stats.reads < k.device.stats.reads <= base.device.stats.reads + windows


EXTEND_AT: dict[str, str] = {
    "vm.evict": wat("vm.evict", "(call $default)", imports=DEFAULT),
    "sched.pick": wat("sched.pick", "(call $default)", imports=DEFAULT),
    "fs.filter": wat("fs.filter", "(drop (local.get $dir)) (drop (local.get $len)) "
                                  "(call $default)", imports=DEFAULT),
}


def _point_workload(k: Kernel, point: str, source: str | None) -> tuple[Any, Graft | None]:
    alice = k.add_user("alice")
    group = k.new_group(alice)
    proc = k.spawn(alice, "app", group)
    g = None
    if point == "vm.evict":
        aspace = k.address_space(proc)
        if source:
            g = k.graft(alice, point, source, target=aspace)
        for r in range(3):
            for v in [*range(12), *range(50 + 20 * r, 70 + 20 * r)]:
                aspace.touch(v, write=v % 2 == 0)
        return (aspace.resident(), aspace.faults, k.cache.stats.snapshot()), g
    if point == "sched.pick":
        for i in range(3):
            k.sched.spawn(proc, [Cpu(4_000_000 + i), Wait(2_000_000)] * 4)
        if source:
            g = k.graft(alice, point, source, target=group)
        k.sched.trace = []
        k.sched.run(until_ns=k.clock.now_ns() + 100_000_000)
        return [(d.tid, d.ran_ns) for d in k.sched.trace], g
    k.fs.create(alice, "f", 0o600)
    with k.fs.open(proc, "f", "rw") as f:
        if source:
            g = k.graft(alice, point, source, target=f.inode)
        k.fs.write(f, pattern(3))
        k.fs.seek(f, 100)
        k.fs.write(f, b"patch" * 10)
    return read_file(k, alice, "f"), g


@pytest.mark.parametrize("point", sorted(EXTEND_AT))
def test_a_graft_returning_defaults_answer_changes_nothing_at_any_function_point(
        boot: Boot, point: str) -> None:
    bare_k = boot("bare", frames=32)
    unwire(bare_k)
    want, _ = _point_workload(bare_k, point, None)
    k = boot("extended", frames=32)
    got, g = _point_workload(k, point, EXTEND_AT[point])
    assert g is not None and g.state == "live"
    assert g.stats.commits > 0 and not g.stats.aborts
    assert got == want
    k.check_invariants()


def test_closing_a_file_or_releasing_memory_removes_its_grafts_and_gives_back_their_memory(
        boot: Boot) -> None:
    k = boot("lifetime", frames=64)
    alice = k.add_user("alice")
    proc = make_file(k, alice, "f", pattern(4))
    before = alice.principal.usage.snapshot()
    f = k.fs.open(proc, "f", "r")
    ra = k.graft(alice, "fs.readahead", RA_SAME, target=f)
    aspace = k.address_space(proc)
    ev = k.graft(alice, "vm.evict", EXTEND_AT["vm.evict"], target=aspace)
    assert alice.principal.usage.memory_bytes > before["memory_bytes"]
    k.fs.close(f)
    assert ra.state == "removed" and ra.removal is None and ev.state == "live"
    aspace.release()
    assert ev.state == "removed" and ev.removal is None
    after = alice.principal.usage.snapshot()
    assert {x: after[x] for x in after if x != "cpu_ns"} == {
        x: before[x] for x in before if x != "cpu_ns"}
    assert k.registry.grafts() == []
    k.check_invariants()
