"""Crash loops for the filter's seal: a seal and an unseal cut at every write.

The seal of a file a filter graft served is stored in its inode (``inode.INODE_SEALED``,
committed before the first block the filter transformed is handed on; an unseal
commits on its own: ``kernel/fileio.py``). ``run`` cuts the power at every write of

- a *seal*: alice's 0o666 file holds plaintext, committed; she installs the ChaCha20
  encryption filter (the sample ``chacha20_filter``) and overwrites two whole blocks,
  syncs and unmounts;
- an *unseal*: her file holds ciphertext written through the filter; she unseals it,
  writes past its end (plain from there on) and unmounts;

with each crash model, and after each cut checks: fsck finds the image clean; it boots;
the file's flags are 0 or ``INODE_SEALED`` and the booted guard agrees; unsealed, not
one sector of the filter's stored form is in the file and bob reads what was there
before (or, after the unseal, the stored form its owner chose); sealed, bob's read and
write are refused (``FilterUnavailable``) and each sector is its old or its new stored
form (ordered mode: overwrites go in place), the unseal's plain write nowhere on the
image.

Usage::

    figures = run(workdir)                  # both loops, every write, cut/torn/lost
    figures.points, figures.sealed, figures.failures

``vino crashloop fs --attacks`` runs it; ``tests/kernel/test_seal_reboot.py`` too.
Deterministic: a failure names the loop, the write and the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vino.kernel import params
from vino.kernel.clock import SimClock
from vino.kernel.crash import SECTOR_SIZE, CrashModel, crash_points
from vino.kernel.device import BlockDevice
from vino.kernel.errors import FilterUnavailable
from vino.kernel.fsck import check_image
from vino.kernel.inode import INODE_SEALED
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.sdk.build import sample_path

__all__ = ["KEY", "MODELS", "NAME", "NBLOCKS", "NONCE", "PLAIN", "SECRET", "SealFigures",
           "encrypt", "run", "sealed_image", "stored", "users"]

BS = params.BLOCK_SIZE
KEY = hashlib.sha256(b"seal key").digest()
NONCE = hashlib.sha256(b"seal nonce").digest()[:12]
NAME = "vault"
NBLOCKS = 512  # a small image: every crash point copies it
PLAIN = b"the old plaintext, readable by all " * 234  # two blocks, nearly
SECRET = b"alice's secret: swordfish; " * 303  # two blocks, nearly
WHOLE = (SECRET * 2)[:2 * BS]  # whole blocks: the seal loop reads no old block through it
AFTER = b"after the unseal"
MODELS = (CrashModel.CUT, CrashModel.TORN, CrashModel.LOST)


@dataclass
class SealFigures:
    """What ``run`` found: cut points per loop, how many left the file sealed, failures."""

    points: dict[str, int] = field(default_factory=dict)
    sealed: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def users(k: Kernel) -> tuple[User, User]:
    """alice and bob, with the same uids on every boot."""
    return k.add_user("alice"), k.add_user("bob")


def encrypt(k: Kernel, alice: User) -> None:
    """Alice's encryption filter on her file."""
    g = k.graft(alice, "fs.filter", sample_path("chacha20_filter.wasm"),
                target=k.fs._inodes[k.fs.stat(NAME).inum])
    if g.send(KEY + NONCE) != 0:
        raise AssertionError("the filter refused its key")


def stored(k: Kernel) -> bytes:
    """The file's stored form, its first two blocks, as the image holds them."""
    ino = k.fs._inodes[k.fs.stat(NAME).inum]
    raw = Path(k.device.path).read_bytes()
    blocks = [k.fs._bmap(ino, b) for b in range(2)]
    return b"".join(raw[b * BS:(b + 1) * BS] if b else bytes(BS) for b in blocks)


def sealed_image(path: Path) -> Path:
    """An image where alice's 0o666 file holds her secret, written through her filter."""
    k = Kernel.boot(path, nblocks=NBLOCKS)
    alice, _ = users(k)
    k.fs.create(alice, NAME, 0o666)
    encrypt(k, alice)
    with k.fs.open(alice, NAME, "rw") as f:
        k.fs.write(f, SECRET)
    k.shutdown()
    return path


def _plain_image(path: Path) -> Path:
    k = Kernel.boot(path, nblocks=NBLOCKS)
    alice, _ = users(k)
    k.fs.create(alice, NAME, 0o666)
    with k.fs.open(alice, NAME, "rw") as f:
        k.fs.write(f, PLAIN)
    k.shutdown()
    return path


def _seal(dev: BlockDevice) -> None:
    k = Kernel(dev, SimClock())
    alice, _ = users(k)
    encrypt(k, alice)
    with k.fs.open(alice, NAME, "rw") as f:
        k.fs.pwrite(f, 0, WHOLE)
    k.fs.sync()
    k.fs.unmount()


def _unseal(dev: BlockDevice) -> None:
    k = Kernel(dev, SimClock())
    alice, _ = users(k)
    k.unseal(alice, k.fs._inodes[k.fs.stat(NAME).inum])
    with k.fs.open(alice, NAME, "rw") as f:  # plain from here on
        k.fs.pwrite(f, len(SECRET), AFTER)
    k.fs.unmount()


def _refused_to(k: Kernel, bob: User) -> str:
    """"" if bob's read and write of the file are both refused, else what got through."""
    with k.fs.open(bob, NAME, "rw") as f:
        for what, op in (("read", lambda: k.fs.pread(f, 0, 100)),
                         ("write", lambda: k.fs.pwrite(f, 0, b"bob's plaintext " * 256))):
            try:
                op()
            except FilterUnavailable:
                continue
            return f"bob's {what} of the sealed file went through"
    return ""


Check = Callable[[Kernel, User, bool], str]


def _loop(base: Path, scratch: Path, workload: Callable[[BlockDevice], None], check: Check,
          name: str, figures: SealFigures, models: Iterable[CrashModel]) -> None:
    figures.points[name] = figures.sealed[name] = 0
    for point in crash_points(base, scratch, workload, models):
        where = f"{name}: {point}"
        figures.points[name] += 1
        report = check_image(scratch)
        if not report.clean:
            figures.failures.append(f"{where}: fsck: {report.damage[:3]}")
            continue
        k = Kernel.boot(scratch, fresh=False)
        try:
            _, bob = users(k)
            ino = k.fs._inodes[k.fs.stat(NAME).inum]
            sealed = k.filters.is_sealed(ino)
            figures.sealed[name] += sealed
            why = ("" if ino.flags in (0, INODE_SEALED) and sealed == bool(ino.flags) else
                   f"flags {ino.flags:#x}, guard {'sealed' if sealed else 'not sealed'}")
            why = why or check(k, bob, sealed)
            k.check_invariants()
        finally:
            k.shutdown()
        if why:
            figures.failures.append(f"{where}: {why}")


def run(workdir: Path, models: Iterable[CrashModel] = MODELS,
        loops: Iterable[str] = ("seal", "unseal")) -> SealFigures:
    """The ``loops`` (module doc), every write with each of ``models``."""
    models, loops = tuple(models), tuple(loops)
    figures = SealFigures()
    scratch = workdir / "seal-scratch.img"
    if "seal" in loops:
        _run_seal(workdir, scratch, figures, models)
    if "unseal" in loops:
        _run_unseal(workdir, scratch, figures, models)
    return figures


def _run_seal(workdir: Path, scratch: Path, figures: SealFigures,
              models: tuple[CrashModel, ...]) -> None:
    # the seal's expected stored form: the same workload, uncut
    ref = _plain_image(workdir / "seal-ref.img")
    with BlockDevice.open(ref, durable=False) as dev:
        _seal(dev)
    k = Kernel.boot(ref, fresh=False)
    try:
        new = stored(k)
    finally:
        k.shutdown()
    old = PLAIN + bytes(2 * BS - len(PLAIN))

    def after_seal(k: Kernel, bob: User, sealed: bool) -> str:
        got = stored(k)
        if not sealed:
            if got != old:
                return "unsealed with a block of the filter's stored form"
            with k.fs.open(bob, NAME, "r") as f:
                return "" if k.fs.pread(f, 0, len(PLAIN)) == PLAIN else "bob read no plaintext"
        if any(got[i:i + SECTOR_SIZE] not in (old[i:i + SECTOR_SIZE], new[i:i + SECTOR_SIZE])
               for i in range(0, 2 * BS, SECTOR_SIZE)):
            return "a sector neither its old nor its new stored form"
        return _refused_to(k, bob)

    _loop(_plain_image(workdir / "seal-base.img"), scratch, _seal, after_seal, "seal",
          figures, models)


def _run_unseal(workdir: Path, scratch: Path, figures: SealFigures,
                models: tuple[CrashModel, ...]) -> None:
    base = sealed_image(workdir / "unseal-base.img")
    k = Kernel.boot(base, fresh=False)
    try:
        cipher = stored(k)[:len(SECRET)]
    finally:
        k.shutdown()

    def after_unseal(k: Kernel, bob: User, sealed: bool) -> str:
        if sealed:
            if AFTER in Path(k.device.path).read_bytes():
                return "still sealed, with the unseal's plain write on the image"
            return _refused_to(k, bob)
        with k.fs.open(bob, NAME, "r") as f:
            return "" if k.fs.pread(f, 0, len(SECRET)) == cipher else "not the stored form"

    _loop(base, scratch, _unseal, after_unseal, "unseal", figures, models)
