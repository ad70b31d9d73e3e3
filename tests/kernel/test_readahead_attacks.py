"""Attacks on the native miss and read-ahead (``native/plainread.c``) from the durability
side: a block read ahead into the cache for one file, then cut off by a truncate or
an unlink and given to another file, must never be served to the first file's reader
(an isolation hole as much as a durability one); nor may a power cut in the middle of
a run of read-ahead leave anything but a state the files had.

Two processes share one file system: one reads in sequential runs (the native
read-ahead loads ahead) and jumps (the native miss), the other truncates, unlinks,
grows, overwrites and syncs, steering the allocator onto the blocks just freed so
the other file takes them. Every read is compared with a model of the files; every
block carries its file, block number and version, so a foreign block is named.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from vino.kernel import params, plainread
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.crash import CrashModel, crash_points
from vino.kernel.device import BlockDevice
from vino.kernel.fs import FileSystem, OpenFile
from vino.kernel.fsck import check_image
from vino.kernel.proc import Process, User, new_pid

BS = params.BLOCK_SIZE
ALICE = User(1000, "alice")
BLOCKS = 60  # past the direct blocks: the remembered block map serves the rest
FRAMES = 24  # a cache smaller than the file: read-ahead's blocks are taken again


pytestmark = pytest.mark.usefixtures("native_misses")


def _block(name: str, b: int, version: int) -> bytes:
    return f"{name}:{b:06d}:{version:06d}:".encode().ljust(BS, name[0].encode())


class _Files:
    """Two files on one file system, a reader process and a writer process, and a
    model of what each file holds."""

    def __init__(self, dev: BlockDevice, frames: int = FRAMES) -> None:
        self.fs = FileSystem.mount(dev, Cache(frames), SimClock())
        self.reader = Process(new_pid(), ALICE, "reader")
        self.writer = Process(new_pid(), ALICE, "writer")
        self.model: dict[str, bytearray] = {}
        self.version = 0
        self.taken = 0  # blocks one file gave back that the other took
        self.r: OpenFile | None = None
        self.w: dict[str, OpenFile] = {}

    def create(self, name: str, blocks: int) -> None:
        self.fs.create(ALICE, name, 0o600)
        self.w[name] = self.fs.open(self.writer, name, "rw")
        self.model[name] = bytearray()
        self.write(name, 0, blocks)

    def write(self, name: str, first: int, count: int) -> None:
        self.version += 1
        data = b"".join(_block(name, b, self.version) for b in range(first, first + count))
        self.fs.pwrite(self.w[name], first * BS, data)
        m = self.model[name]
        if len(m) < first * BS:
            m.extend(bytes(first * BS - len(m)))
        m[first * BS:first * BS + len(data)] = data

    def truncate(self, name: str, size: int) -> None:
        self.fs.truncate(self.w[name], size)
        m = self.model[name]
        if size < len(m):
            del m[size:]
        else:
            m.extend(bytes(size - len(m)))

    def reuse(self, name: str, freed: list[int]) -> None:
        """Steer the allocator onto ``freed`` (blocks just given back), then grow ``name``."""
        self.fs.sync()  # the blocks freed are usable from here
        if freed:
            self.fs._alloc_hint = min(freed)
        self.write(name, len(self.model[name]) // BS, 8)
        self.taken += len(set(freed) & set(self.mapped(name)))

    def mapped(self, name: str) -> list[int]:
        ino = self.w[name].inode
        return [self.fs._bmap(ino, b) for b in range(-(-ino.size // BS))]

    def read(self, name: str, b: int) -> None:
        if self.r is None or self.r.name != name:
            if self.r is not None:
                self.fs.close(self.r)
            self.r = self.fs.open(self.reader, name, "r")
        got = self.fs.pread(self.r, b * BS, BS)
        want = bytes(self.model[name][b * BS:(b + 1) * BS])
        assert got == want, (f"{name} block {b}: read {got[:24]!r}, the file holds "
                             f"{want[:24]!r}")


def _steps(files: _Files, rng: random.Random, steps: int) -> None:
    """A seeded interleaving of the reader's runs and jumps and the writer's cuts,
    reuses, unlinks, growths and overwrites."""
    for _ in range(steps):
        size = len(files.model["a"]) // BS
        op = rng.random()
        if op < 0.55 and size:  # a sequential run: the read-ahead loads ahead of it
            start = rng.randrange(size)
            for b in range(start, min(size, start + rng.randrange(2, 12))):
                files.read("a", b)
        elif op < 0.65 and size:  # a jump: a miss
            files.read("a", rng.randrange(size))
        elif op < 0.75 and size > 2:  # cut a's tail, which the read-ahead may hold
            cut = rng.randrange(1, size)
            freed = files.mapped("a")[cut:]
            files.truncate("a", cut * BS + rng.choice((0, 100)))
            files.reuse("b", freed)  # ... and b takes its blocks
        elif op < 0.8:  # b unlinked and made again: its blocks change hands
            freed = files.mapped("b")
            files.fs.close(files.w.pop("b"))
            files.fs.unlink(ALICE, "b")
            del files.model["b"]
            files.create("b", 2)
            files.fs.sync()
            files.fs._alloc_hint = min(freed, default=0) or files.fs._alloc_hint
            files.write("a", size, 6)  # a grows into b's old blocks
        elif op < 0.9:  # a grows past a hole
            files.write("a", size + rng.randrange(0, 3), rng.randrange(1, 6))
        else:  # overwrites in place
            b = rng.randrange(max(size, 1))
            files.write("a", b, 1)


def test_blocks_read_ahead_then_cut_off_and_given_to_another_file_are_never_served_stale(
        tmp_path: Path) -> None:
    misses, ahead = plainread.served_misses(), plainread.served_readahead()
    with BlockDevice.create(tmp_path / "ra.img", 1024, durable=False) as dev:
        FileSystem.format(dev, 16)
        files = _Files(dev)
        files.create("a", BLOCKS)
        files.create("b", 4)
        files.fs.sync()
        _steps(files, random.Random(11), 400)
        files.fs.check_invariants()
        files.fs.unmount()
    assert check_image(tmp_path / "ra.img").clean
    assert files.taken > 50, files.taken
    assert plainread.served_misses() - misses > 20, "too few native misses"
    assert plainread.served_readahead() - ahead > 20, "too little native read-ahead"


def test_a_reader_racing_a_process_that_cuts_and_reuses_blocks_never_reads_a_foreign_block(
        tmp_path: Path) -> None:
    """A thread reads a in sequential runs while another cuts a's tail, syncs and gives
    the blocks to b, grows a again: each read is a block of a (some version), zeros
    (a hole) or nothing (past the end), never b's."""
    with BlockDevice.create(tmp_path / "race.img", 1024, durable=False) as dev:
        FileSystem.format(dev, 16)
        files = _Files(dev)
        files.create("a", BLOCKS)
        files.create("b", 2)
        files.fs.sync()
        fs = files.fs
        r = fs.open(files.reader, "a", "r")
        done = threading.Event()
        bad: list[str] = []
        reads = 0

        def cut_and_reuse() -> None:
            try:
                for v in range(40):
                    cut = 8 + v % 30
                    freed = files.mapped("a")[cut:]
                    files.truncate("a", cut * BS)
                    files.truncate("b", 0)
                    files.reuse("b", freed)
                    files.write("a", cut, BLOCKS - cut)
            finally:
                done.set()

        writer = threading.Thread(target=cut_and_reuse)
        writer.start()
        try:
            b = 0
            while not done.is_set():
                got = fs.pread(r, b * BS, BS)
                reads += 1
                if got and got != bytes(BS) and not got.startswith(f"a:{b:06d}:".encode()):
                    bad.append(f"a block {b}: {got[:24]!r}")
                b = (b + 1) % BLOCKS
        finally:
            writer.join()
        fs.close(r)
        fs.check_invariants()
        fs.unmount()
    assert not bad, f"{len(bad)} of {reads} reads returned a foreign block: {bad[:3]}"
    assert reads > 100 and files.taken > 50, (reads, files.taken)


@pytest.mark.parametrize("model", [CrashModel.CUT, CrashModel.LOST])
def test_a_power_cut_amid_read_ahead_cuts_and_reuses_leaves_only_states_the_files_had(
        tmp_path: Path, model: CrashModel) -> None:
    """The seeded interleaving, cut at every write: during it every read matched the
    model; after, fsck is clean and every block of every file is its own (a block of
    that file at that number, some version) or zeros: never another file's."""
    base = tmp_path / "base.img"
    with BlockDevice.create(base, 512, durable=False) as dev:
        FileSystem.format(dev, 16)
        files = _Files(dev)
        files.create("a", 40)
        files.create("b", 4)
        files.fs.unmount()

    def workload(dev: BlockDevice) -> None:
        files = _Files(dev)
        files.w = {n: files.fs.open(files.writer, n, "rw") for n in ("a", "b")}
        for n, of in files.w.items():
            files.model[n] = bytearray(files.fs.pread(of, 0, of.inode.size))
        files.version = 1000
        _steps(files, random.Random(3), 40)
        files.fs.sync()

    scratch, tried = tmp_path / "x.img", 0
    for point in crash_points(base, scratch, workload, [model]):
        assert check_image(scratch).clean, point
        with BlockDevice.open(scratch, durable=False) as dev:
            fs = FileSystem.mount(dev, Cache(16), SimClock())
            for name in fs.listdir():
                with fs.open(ALICE, name, "r") as f:
                    data = fs.read(f, fs.stat(name).size)
                for b in range(-(-len(data) // BS)):
                    got = data[b * BS:(b + 1) * BS]
                    assert not any(got) or got.startswith(f"{name}:{b:06d}:".encode()), \
                        f"{point}: {name} block {b} holds {got[:24]!r}"
            fs.check_invariants()
            fs.unmount()
        tried += 1
    assert tried > 20, tried
