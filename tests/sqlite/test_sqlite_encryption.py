"""Encryption at rest: SQLite's files through the ChaCha20 filter graft.

Attacks: look for the rows in the raw device image; mount it again without the key;
mount it again and send the key; use the journal mode that makes a new journal file
for every transaction.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from vino.demo import sqlite as scenarios
from vino.demo.sqlite import Config
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.sqlite import workloads as wl
from vino.sqlite.grafts import Plan, nonce_for
from vino.sqlite.session import Session

KEY = hashlib.sha256(b"test key").digest()


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return scenarios.encryption(tmp_path_factory.mktemp("crypt"), Config.small(5000))


def test_no_row_text_or_sqlite_header_reaches_the_device_image(
        result: dict[str, object]) -> None:
    assert result["roundtrip"] is True
    assert result["leaked"] == []
    assert result["files"] == ["bench.db", "bench.db-journal"]  # TRUNCATE keeps the journal


def test_the_database_reads_back_after_remount_with_the_key_sent_again(
        result: dict[str, object]) -> None:
    assert result["remount_with_key"] is True


def test_without_the_key_the_database_is_unreadable(result: dict[str, object]) -> None:
    assert result["readable_without_key"] is False
    # the sealed file refuses every read (FilterUnavailable, an I/O error to SQLite): no
    # ciphertext is read as a page
    assert result["without_key_error"] == "IOError"


def test_the_image_holds_rfc8439_chacha20_of_the_page(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "c.db", plan=Plan(key=KEY), journal_mode="truncate") as s:
        s.db.execute("create table t(v); insert into t values('secret')")
        page1 = s.db.read("main", 0, 0, 4096)[1]  # plaintext, through the filter
    kernel.fs.unmount()
    cipher = Cipher(algorithms.ChaCha20(KEY, bytes(4) + nonce_for("c.db")), None)
    want = cipher.encryptor().update(page1)
    assert want in kernel.device.path.read_bytes()


def test_a_new_journal_per_transaction_gets_a_filter_and_loses_it_when_deleted(
        kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "c.db", plan=Plan(key=KEY), journal_mode="delete") as s:
        model = wl.build(s.db, 2000)
        assert wl.updates(s.db, model, 5, 10) and wl.verify(s.db, model)
        live = [g for g in s.grafts.installed if g.state == "live"]
        assert [g.point.name for g in live] == ["fs.filter"]  # only the database's
        journals = [g for g in s.grafts.installed if g.state != "live"]
        assert journals and all(g.removal is None for g in journals)  # removed, not aborted
    kernel.fs.unmount()
    raw = kernel.device.path.read_bytes()
    assert b"row0001000" not in raw and b"SQLite format 3" not in raw


def test_a_wrong_key_reads_garbage_not_rows(tmp_path: Path) -> None:
    k = Kernel.boot(tmp_path / "d.img", nblocks=1024)
    try:
        with Session(k, k.add_user("alice"), "c.db", plan=Plan(key=KEY)) as s:
            wl.build(s.db, 500)
    finally:
        k.shutdown()
    k = Kernel.boot(tmp_path / "d.img", fresh=False)
    try:
        wrong = hashlib.sha256(b"wrong").digest()
        with pytest.raises(Exception, match="not a database"):
            Session(k, k.add_user("alice"), "c.db", plan=Plan(key=wrong))
    finally:
        k.shutdown()
