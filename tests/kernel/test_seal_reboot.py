"""Attacks on the filter's seal across a reboot: the seal lives in the on-disk inode.

A file a filter graft served is sealed (``points.FilterGuard``): with no filter graft to
answer for it, its reads and writes are refused. The seal is stored in the inode
(``inode.INODE_SEALED``), committed before the first block the filter transformed can
reach the device, and cleared by ``Kernel.unseal`` in a commit of its own; so after a
reboot another user still meets the refusal, and a power cut at any write of a seal or
an unseal leaves the file sealed or not -- never unsealed over ciphertext.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from vino import sealloop
from vino.kernel import params
from vino.kernel.device import BlockDevice
from vino.kernel.errors import AccessDenied, CorruptFileSystem, FilterUnavailable
from vino.kernel.fsck import check_image
from vino.kernel.inode import INODE_SEALED, ROOT_INUM
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.kernel.repair import repair_image
from vino.sealloop import KEY, NAME, NBLOCKS, NONCE, PLAIN, SECRET

BS = params.BLOCK_SIZE
_users, _encrypt, _sealed_image = sealloop.users, sealloop.encrypt, sealloop.sealed_image


def _chacha20(data: bytes) -> bytes:
    return Cipher(algorithms.ChaCha20(KEY, bytes(4) + NONCE), None).encryptor().update(data)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BS)


def _boot(image: Path) -> Kernel:
    return Kernel.boot(image, fresh=False)


def _stored(image: Path) -> bytes:
    """The file's stored form, read from the image (its first two blocks)."""
    k = _boot(image)
    try:
        return sealloop.stored(k)
    finally:
        k.shutdown()


def _assert_refused_to_bob(k: Kernel, bob: User) -> None:
    with k.fs.open(bob, NAME, "rw") as f:
        with pytest.raises(FilterUnavailable):
            k.fs.pread(f, 0, 100)
        with pytest.raises(FilterUnavailable):
            k.fs.pwrite(f, 0, b"bob's plaintext " * 256)


# ---- after a reboot -----------------------------------------------------------------------

def test_other_user_after_a_reboot_can_neither_read_the_stored_form_nor_write_plaintext(
        tmp_path: Path) -> None:
    image = _sealed_image(tmp_path / "disk.img")
    k = _boot(image)
    try:
        _, bob = _users(k)
        _assert_refused_to_bob(k, bob)
    finally:
        k.shutdown()
    raw = image.read_bytes()
    assert b"bob's plaintext" not in raw and b"swordfish" not in raw
    assert _stored(image) == _chacha20(_padded(SECRET))  # untouched by bob


def test_owner_after_a_reboot_is_refused_until_her_filter_is_back_then_gets_her_data(
        tmp_path: Path) -> None:
    image = _sealed_image(tmp_path / "disk.img")
    k = _boot(image)
    try:
        alice, _ = _users(k)
        with k.fs.open(alice, NAME, "rw") as f:
            with pytest.raises(FilterUnavailable):
                k.fs.pread(f, 0, 100)
            with pytest.raises(FilterUnavailable):
                k.fs.pwrite(f, 0, b"x" * BS)
            _encrypt(k, alice)
            assert k.fs.pread(f, 0, len(SECRET)) == SECRET
        k.check_invariants()
    finally:
        k.shutdown()


def test_seal_survives_a_power_cut_right_after_the_first_filtered_write(
        tmp_path: Path) -> None:
    # No unmount, no sync by the user after the filter came: the seal commits before the
    # ciphertext is handed on, which overwrites the old plaintext in place.
    image = tmp_path / "disk.img"
    k = Kernel.boot(image, nblocks=NBLOCKS)
    alice, _ = _users(k)
    k.fs.create(alice, NAME, 0o666)
    with k.fs.open(alice, NAME, "rw") as f:
        k.fs.write(f, PLAIN)
    k.fs.sync()
    _encrypt(k, alice)
    with k.fs.open(alice, NAME, "rw") as f:
        k.fs.pwrite(f, 0, SECRET)
    k.cache.sync()  # the ciphertext reaches the device (a write-back), nothing commits
    k.device.close()  # the power goes
    k.release_image()
    raw = image.read_bytes()
    assert _chacha20(_padded(SECRET))[:BS] in raw  # the stored form did reach the device
    k = _boot(image)
    try:
        _, bob = _users(k)
        _assert_refused_to_bob(k, bob)
    finally:
        k.shutdown()


def test_unseal_by_its_owner_survives_a_reboot_and_nobody_else_may_unseal(
        tmp_path: Path) -> None:
    image = _sealed_image(tmp_path / "disk.img")
    k = _boot(image)
    alice, bob = _users(k)
    ino = k.fs._inodes[k.fs.stat(NAME).inum]
    with pytest.raises(AccessDenied, match="does not own"):
        k.unseal(bob, ino)
    k.unseal(alice, ino)
    k.shutdown()
    k = _boot(image)
    try:
        _, bob = _users(k)
        ino = k.fs._inodes[k.fs.stat(NAME).inum]
        assert not ino.flags and not k.filters.is_sealed(ino)
        with k.fs.open(bob, NAME, "r") as f:  # the owner chose: the stored form, as stored
            assert k.fs.pread(f, 0, len(SECRET)) == _chacha20(_padded(SECRET))[:len(SECRET)]
    finally:
        k.shutdown()


def test_a_freed_sealed_inode_gives_its_number_to_a_new_file_unsealed(tmp_path: Path) -> None:
    image = _sealed_image(tmp_path / "disk.img")
    k = _boot(image)
    alice, bob = _users(k)
    inum = k.fs.stat(NAME).inum
    k.fs.unlink(alice, NAME)
    k.fs.create(bob, "fresh", 0o600)
    assert k.fs.stat("fresh").inum == inum
    with k.fs.open(bob, "fresh", "rw") as f:
        k.fs.pwrite(f, 0, b"bob's own")
    k.shutdown()
    k = _boot(image)
    try:
        _, bob = _users(k)
        with k.fs.open(bob, "fresh", "r") as f:
            assert k.fs.pread(f, 0, 9) == b"bob's own"
    finally:
        k.shutdown()


# ---- power cuts during a seal and an unseal -------------------------------------------------

def test_power_cut_at_any_write_of_a_seal_never_leaves_ciphertext_unsealed(
        tmp_path: Path) -> None:
    # alice's first write through her filter over her committed plaintext, cut at every
    # write with each model (sealloop's checks: fsck clean; sealed or not, the guard
    # agreeing; unsealed, no sector of ciphertext and bob reads the old plaintext; sealed,
    # every sector old or new, bob refused)
    figures = sealloop.run(tmp_path, loops=("seal",))
    assert figures.failures == [], "\n".join(figures.failures[:10])
    assert figures.points["seal"] >= 3 * 6
    assert 0 < figures.sealed["seal"] < figures.points["seal"]  # cuts on both sides


def test_power_cut_at_any_write_of_an_unseal_leaves_the_file_sealed_or_not(
        tmp_path: Path) -> None:
    figures = sealloop.run(tmp_path, loops=("unseal",))
    assert figures.failures == [], "\n".join(figures.failures[:10])
    assert figures.points["unseal"] >= 3 * 3
    assert 0 < figures.sealed["unseal"] < figures.points["unseal"]


# ---- hostile images ---------------------------------------------------------------------------

def _poke_flags(image: Path, inum: int, flags: int) -> None:
    """Store ``flags`` in inode ``inum``'s on-disk flag field (committed through the log,
    as the image's last transaction), as a hostile image would hold them."""
    k = _boot(image)
    ino = k.fs._inodes[inum]
    ino.flags = flags
    k.fs._store_inode(ino)
    k.shutdown()


@pytest.mark.parametrize("flags", [0x2, 0x8000, INODE_SEALED | 0x4])
def test_image_with_unknown_seal_bits_is_refused_then_repaired_sealed(
        tmp_path: Path, flags: int) -> None:
    image = _sealed_image(tmp_path / "disk.img")
    k = _boot(image)
    inum = k.fs.stat(NAME).inum
    alice, _ = _users(k)
    k.unseal(alice, k.fs._inodes[inum])
    k.shutdown()
    _poke_flags(image, inum, flags)
    report = check_image(image)
    assert any("flags" in d for d in report.damage), report.damage
    with pytest.raises(CorruptFileSystem, match="flags"):
        _boot(image)
    fixed = repair_image(image)
    assert any("flags" in c for c in fixed.changes), fixed.changes
    assert check_image(image).clean
    k = _boot(image)  # fail closed: a field that may mean a seal is taken as one
    try:
        _, bob = _users(k)
        _assert_refused_to_bob(k, bob)
    finally:
        k.shutdown()


def test_image_with_a_sealed_directory_is_refused_then_repaired(tmp_path: Path) -> None:
    image = _sealed_image(tmp_path / "disk.img")
    _poke_flags(image, ROOT_INUM, INODE_SEALED)
    assert any("flags" in d for d in check_image(image).damage)
    with pytest.raises(CorruptFileSystem, match="flags"):
        _boot(image)
    repair_image(image)
    assert check_image(image).clean
    k = _boot(image)
    try:
        assert not k.fs._inodes[ROOT_INUM].flags
        _, bob = _users(k)
        _assert_refused_to_bob(k, bob)  # the file's own seal is kept
    finally:
        k.shutdown()


def test_image_of_the_previous_format_mounts_unsealed_and_is_upgraded(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    k = Kernel.boot(image, nblocks=NBLOCKS)
    alice, _ = _users(k)
    k.fs.create(alice, NAME, 0o644)
    with k.fs.open(alice, NAME, "rw") as f:
        k.fs.write(f, PLAIN)
    k.shutdown()
    with BlockDevice.open(image, durable=False) as dev:  # version 2: the flag field was a pad
        raw = bytearray(dev.read_block(0))
        struct.pack_into("<I", raw, 8, 2)
        dev.write_block(0, bytes(raw))
    assert check_image(image).clean
    k = _boot(image)
    try:
        _, bob = _users(k)
        with k.fs.open(bob, NAME, "r") as f:
            assert k.fs.pread(f, 0, len(PLAIN)) == PLAIN
    finally:
        k.shutdown()
    assert struct.unpack_from("<I", image.read_bytes(), 8)[0] == params.FS_VERSION == 3



@pytest.mark.parametrize("sealed", [False, True])
def test_power_cut_with_a_file_unlinked_while_open_never_stops_the_next_boot(
        tmp_path: Path, sealed: bool) -> None:
    # The mount frees the orphan and the kernel hears of it (its seal let go) before the
    # kernel has a registry: that boot raised AttributeError, so such an image never booted.
    image = tmp_path / "disk.img"
    k = Kernel.boot(image, nblocks=NBLOCKS)
    alice, _ = _users(k)
    k.fs.create(alice, NAME, 0o666)
    if sealed:
        _encrypt(k, alice)
    f = k.fs.open(alice, NAME, "rw")
    k.fs.write(f, SECRET)
    inum = k.fs.stat(NAME).inum
    k.fs.unlink(alice, NAME)
    k.fs.sync()  # the unlink is durable, the file still open
    k.device.close()  # the power goes
    k.release_image()
    k = _boot(image)
    try:
        alice, bob = _users(k)
        assert k.fs.listdir() == [] and not k.filters.sealed  # freed, its seal let go
        k.fs.create(bob, "fresh", 0o600)
        assert k.fs.stat("fresh").inum == inum
        with k.fs.open(bob, "fresh", "rw") as f:
            k.fs.pwrite(f, 0, b"bob's own")
            assert k.fs.pread(f, 0, 9) == b"bob's own"
        k.check_invariants()
    finally:
        k.shutdown()
