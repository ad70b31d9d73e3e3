"""Attacks on the seal of ``fs.filter``: the identity never stands in for a file's filter.

Once a filter graft has served a file, the file is sealed (``kernel/points.py``,
``FilterGuard``): with its filter gone, its reads and writes are refused. The
point's default lets the identity through for a sealed file only when a filter
graft calls ``default()`` on that file's own call. These attacks try to get the
identity from inside *another* file's filter graft.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vino.graft import GraftCallable
from vino.graft.txn import Transaction
from vino.kernel import crypto
from vino.kernel.errors import FilterUnavailable
from vino.kernel.fileio import FILTER_READ

from .harness import KernelArena

CHACHA = ('(import "vino" "chacha20" (func $chacha (param i32 i32 i32 i32 i32) (result i32)))')

XOR_FILTER = """(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_filter") (param $dir i32) (param $len i32) (result i32) (local $i i32)
    (block (loop
      (br_if 1 (i32.ge_u (local.get $i) (local.get $len)))
      (i32.store8 (i32.add (i32.const 16) (local.get $i))
        (i32.xor (i32.load8_u (i32.add (i32.const 16) (local.get $i))) (i32.const 0x5a)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br 0)))
    (local.get $len)))"""

# Bob's filter calls the kernel's cipher, under which the host (below) reaches alice's file.
CIPHER_FILTER = f"""(module {CHACHA}
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_filter") (param $dir i32) (param $len i32) (result i32)
    (drop (call $chacha (i32.const 8192) (i32.const 8192) (i32.const 0) (i32.const 16)
                        (i32.const 0)))
    (local.get $len)))"""


def test_graft_filtering_its_own_file_cannot_get_the_identity_for_another_users_sealed_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Host code that reaches another file's filter slot while bob's filter graft runs (here
    # the cipher callable, standing for any host path under a filter's call): the nearest
    # graft transaction is a filter graft's, but not for that file.
    met: list[object] = []
    arena: list[KernelArena] = []

    def cipher_reaching_alices_file(txn: Transaction, *args: int) -> int:
        k = arena[0].k
        inode = arena[0].inode("alice.dat")
        blk = k.fs._bmap(inode, 0)
        stored = bytearray(k.device.read_block(blk))
        try:
            k.fs.filter_policy(inode, 0, stored, FILTER_READ)
        except FilterUnavailable as e:
            met.append(e)
        else:
            met.append(bytes(stored))
        return crypto.chacha20(txn, *args)

    monkeypatch.setattr(crypto, "CHACHA20", GraftCallable(
        "chacha20", crypto.CHACHA20.params, crypto.CHACHA20.results, cipher_reaching_alices_file))
    a = KernelArena(tmp_path)
    arena.append(a)
    try:
        k = a.k
        alice, bob = a.tenants["alice"], a.tenants["bob"]
        ainode, binode = a.inode("alice.dat"), a.inode("bob.dat")
        secret = b"alice's secret!!" * 256
        g = k.graft(alice.user, "fs.filter", XOR_FILTER, target=ainode)
        with k.fs.open(alice.proc, "alice.dat", "rw") as f:
            k.fs.write(f, secret)  # sealed: the stored form is the filter's
        k.cache.sync()
        k.registry.remove(g)  # her filter gone, her file's reads are refused
        with k.fs.open(alice.proc, "alice.dat", "r") as f, pytest.raises(FilterUnavailable):
            k.fs.read(f, 16)
        k.graft(bob.user, "fs.filter", CIPHER_FILTER, target=binode)
        with k.fs.open(bob.proc, "bob.dat", "r") as f:
            k.fs.read(f, 16)
        assert met, "bob's filter was not called"
        # Before the fix: the identity answered for alice's sealed file (the stored form
        # handed out as its data) because the nearest graft was *a* filter graft.
        assert all(isinstance(m, FilterUnavailable) for m in met), met
    finally:
        a.close()


DEFAULT_FILTER = """(module
  (import "vino" "default" (func $default (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_filter") (param $dir i32) (param $len i32) (result i32)
    (call $default)))"""


def test_filter_graft_that_calls_default_on_its_own_sealed_file_still_gets_the_identity(
        kernel: KernelArena) -> None:
    # The other side of the rule above: the file's own filter may extend the identity.
    k, bob = kernel.k, kernel.tenants["bob"]
    g = k.graft(bob.user, "fs.filter", DEFAULT_FILTER, target=kernel.inode("bob.dat"))
    with k.fs.open(bob.proc, "bob.dat", "r") as f:
        assert k.fs.read(f, 12) == b"bob's data b"
    assert kernel.k.filters.is_sealed(kernel.inode("bob.dat"))
    assert g.state == "live" and not g.stats.aborts and g.stats.commits == 1
