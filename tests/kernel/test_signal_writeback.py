"""Attacks on a dirty victim's write-back from a signal handler.

A signal handler runs between any two bytecodes of the thread it interrupts, and the
file system's and the cache's locks are re-entrant: a handler that syncs, writes or
reads files can run in the middle of an eviction's write-back of a dirty file block
(``Cache._evict``). Before, a handler's ``sync`` wrote the victim back and forgot it
as dirty, and the eviction then failed with a bare ``KeyError`` (``_dirty_files``).
A handler's write to that block, after the device had the bytes, went with the frame:
lost. Now the victim stays pinned until it is unmapped: a handler's miss takes another
frame, its sync of the victim changes nothing, and its write to the victim's block is
refused with ``CacheBusy`` (nothing changed) while its writes elsewhere go through.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vino.kernel import params
from vino.kernel.cache import AddressSpace, Cache
from vino.kernel.errors import CacheBusy
from vino.kernel.fsck import check_image
from vino.kernel.proc import Process, User

from .conftest import MakeDevice
from .kernel_world import Boot, pattern

BS = params.BLOCK_SIZE
BLOCKS = 40  # five times the frames: every write past the eighth block evicts a dirty one
PAGES = 24  # six times the frames: every write past the fourth page swaps one out


@pytest.fixture
def boot(tmp_path: Path) -> Iterator[Boot]:
    b = Boot(tmp_path)
    yield b
    b.close()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("action", ["sync", "write", "read"])
def test_signal_handler_amid_a_dirty_victims_write_back_loses_nothing_and_breaks_nothing(
        boot: Boot, action: str, when: str) -> None:
    k = boot(frames=8)
    alice = k.add_user("alice")
    k.fs.create(alice, "f", 0o600)
    k.fs.create(alice, "g", 0o600)
    f = k.fs.open(alice, "f", "rw")
    g = k.fs.open(alice, "g", "rw")
    k.fs.pwrite(g, 0, pattern(4))
    k.fs.sync()
    want = bytearray(pattern(BLOCKS))
    handled = [0]
    refused: list[int] = []
    want_g = bytearray(pattern(4))
    handling = [False]
    data_start = k.fs.geo.data_start

    def handler(signum: int, _frame: object) -> None:
        handling[0] = True
        try:
            handled[0] += 1
            if action == "sync":
                k.fs.sync()
            elif action == "write":  # the block being written back, and one resident
                for b in range(BLOCKS):
                    if k.fs._bmap(f.inode, b) == victim[0]:
                        try:
                            k.fs.pwrite(f, b * BS, b"handler!" * (BS // 8))
                        except CacheBusy:  # its bytes would go with the frame
                            refused.append(b)
                        else:
                            want[b * BS:(b + 1) * BS] = b"handler!" * (BS // 8)
                k.fs.pwrite(g, 0, b"g's head")  # resident, not pinned: written
                want_g[:8] = b"g's head"
            else:
                k.fs.pread(g, (handled[0] % 4) * BS, BS)  # a miss: a frame of its own
        finally:
            handling[0] = False

    real = k.device.write_block
    victim = [0]

    def write_block(n: int, data: bytes | bytearray | memoryview) -> None:
        amid = (not handling[0] and n >= data_start  # a victim's write-back
                and sys._getframe(1).f_code.co_name == "_write_back_victim")
        victim[0] = n
        if amid and when == "before":
            os.kill(os.getpid(), signal.SIGUSR1)  # handled at once, before this returns
        real(n, data)
        if amid and when == "after":  # the device has the bytes; the frame is still mapped
            os.kill(os.getpid(), signal.SIGUSR1)

    k.device.write_block = write_block  # type: ignore[method-assign]
    old = signal.signal(signal.SIGUSR1, handler)
    try:
        for b in range(BLOCKS):  # each new block takes a frame: a dirty victim goes
            k.fs.pwrite(f, b * BS, bytes(want[b * BS:(b + 1) * BS]))
    finally:
        signal.signal(signal.SIGUSR1, old)
        vars(k.device).pop("write_block", None)
    assert handled[0] >= 3  # the handler did run amid write-backs (a sync leaves fewer)
    k.check_invariants()
    assert k.fs.pread(f, 0, BLOCKS * BS) == want
    assert k.fs.pread(g, 0, 4 * BS) == want_g
    if action == "write":
        assert len(refused) >= 10  # the write to the block going was refused, no other
    k.fs.close(f)
    k.fs.close(g)
    image = boot.image(k)
    k.shutdown()
    assert check_image(image).clean
    k = boot(image.stem, frames=8, fresh=False)
    alice = k.add_user("alice")
    with k.fs.open(alice, "f", "r") as f2:
        assert k.fs.pread(f2, 0, BLOCKS * BS) == want
    with k.fs.open(alice, "g", "r") as g2:
        assert k.fs.pread(g2, 0, 4 * BS) == want_g


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_signal_handler_amid_a_dirty_pages_swap_out_loses_no_write(
        make_device: MakeDevice) -> None:
    # The anonymous twin: a handler's write to the page being swapped out, after the swap
    # device had its bytes, went with the frame. (A handler's fault amid the fault that
    # swaps out is refused already: the cache's busy mark.)
    swap = make_device(64, "swap.img")
    cache = Cache(4, swap=swap, min_resident=0)
    aspace = AddressSpace(Process(1, User(1000, "alice"), "app"), cache)
    want = {vpn: bytes([vpn + 1]) * BS for vpn in range(PAGES)}
    handling = [False]
    refused: list[int] = []
    going = [-1]

    def handler(signum: int, _frame: object) -> None:
        handling[0] = True
        try:
            vpn = going[0]
            try:
                aspace.write(vpn, b"handler!" * (BS // 8))
            except CacheBusy:  # its bytes would go with the frame
                refused.append(vpn)
            else:
                want[vpn] = b"handler!" * (BS // 8)
        finally:
            handling[0] = False

    real = swap.write_block

    def write_block(n: int, data: bytes | bytearray | memoryview) -> None:
        real(n, data)
        if not handling[0]:  # the device has the bytes; the frame is still mapped
            going[0] = next(v for v, f in aspace._resident.items() if f.data is data)
            os.kill(os.getpid(), signal.SIGUSR1)

    swap.write_block = write_block  # type: ignore[method-assign]
    old = signal.signal(signal.SIGUSR1, handler)
    try:
        for vpn in range(PAGES):  # each page once: a later write would hide a lost one
            aspace.write(vpn, want[vpn])
    finally:
        signal.signal(signal.SIGUSR1, old)
        vars(swap).pop("write_block", None)
    for vpn in range(PAGES):
        assert aspace.read(vpn) == want[vpn], vpn
    assert len(refused) >= 10  # the write to the page going was refused
    cache.check_invariants()
