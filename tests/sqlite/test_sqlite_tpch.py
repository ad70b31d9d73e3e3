"""TPC-H on vino: every answer equals stock SQLite's on an ordinary file.

A small scale factor (0.002: 12,000 line items, ~2.7 MiB) of the seeded generator,
loaded once through the VFS and once into a plain file; the 22 queries are run on
both, and again on vino after an unmount and remount.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import pytest

from vino.kernel.kernel import Kernel
from vino.sqlite import tpch
from vino.sqlite.session import Session, configure

SF = 0.002
MEANINGFUL = 15  # queries that must select something at this scale factor (17 do)

Answers = dict[int, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def tables() -> dict[str, list[tuple[Any, ...]]]:
    return tpch.generate(SF, seed=1)


@pytest.fixture(scope="module")
def stock(tables: dict[str, list[tuple[Any, ...]]],
          tmp_path_factory: pytest.TempPathFactory) -> Answers:
    db = apsw.Connection(str(tmp_path_factory.mktemp("stock") / "tpch.db"))
    try:
        configure(db)
        tpch.load(db, tables)
        return tpch.answers(db, SF)
    finally:
        db.close()


def _meaningful(answers: Answers) -> int:
    return sum(1 for rows in answers.values()
               if rows and any(v is not None for v in rows[0]))


def test_the_generator_is_seeded_and_follows_the_cardinalities() -> None:
    a, b = tpch.generate(0.001, seed=7), tpch.generate(0.001, seed=7)
    assert a == b and a != tpch.generate(0.001, seed=8)
    counts = dict(tpch.rows_of(a))
    assert counts["region"] == 5 and counts["nation"] == 25
    assert counts["part"] == 200 and counts["partsupp"] == 800 and counts["orders"] == 1500
    assert 1500 <= counts["lineitem"] <= 7 * 1500


def test_every_tpch_answer_on_vino_equals_stock_sqlite(
        tables: dict[str, list[tuple[Any, ...]]], stock: Answers, tmp_path: Path) -> None:
    assert _meaningful(stock) >= MEANINGFUL  # the comparison is not of empty answers
    k = Kernel.boot(tmp_path / "disk.img", nblocks=8192, frames=256)  # within the disk quota
    try:
        with Session(k, k.add_user("analyst"), "tpch.db") as s:
            tpch.load(s.db, tables)
            assert s.db.execute("pragma integrity_check").fetchall() == [("ok",)]
            assert tpch.compare(tpch.answers(s.db, SF), stock) == []
        image = k.device.path
        k.shutdown()
        k = Kernel.boot(image, fresh=False)
        with Session(k, k.add_user("analyst"), "tpch.db") as s:
            assert tpch.compare(tpch.answers(s.db, SF), stock) == []
    finally:
        k.shutdown()
