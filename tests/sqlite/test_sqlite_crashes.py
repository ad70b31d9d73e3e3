"""Crash loops for SQLite on vino: the checker finds what it is there to find."""

from __future__ import annotations

import shutil
from pathlib import Path

from vino.kernel.crash import CrashPlan
from vino.kernel.kernel import Kernel
from vino.sqlite import crashes
from vino.sqlite.crashes import Mode

# ---- the checker finds what it is there to find ----------------------------------------------

def _image_after(tmp_path: Path, mode: Mode, at_write: int) -> tuple[Path, int]:
    start, image = tmp_path / "start.img", tmp_path / "image.img"
    crashes._starting_image(start, mode)
    shutil.copyfile(start, image)
    committed, _ = crashes._run_to_crash(image, mode, CrashPlan(at_write))
    return image, committed


def test_the_checker_reports_a_committed_transaction_that_is_missing(tmp_path: Path) -> None:
    mode = Mode("delete", "extra", encrypted=False)
    image, committed = _image_after(tmp_path, mode, crashes.NEVER)
    assert committed == crashes.TXNS
    assert crashes._check(image, mode, committed) == ("", crashes.TXNS)
    what, _ = crashes._check(image, mode, committed + 2)  # as if two more had returned
    assert what.startswith("durability")


def test_the_checker_reports_a_malformed_database(tmp_path: Path) -> None:
    mode = Mode("delete", "full", encrypted=False)
    image, committed = _image_after(tmp_path, mode, crashes.NEVER)
    k = Kernel.boot(image, fresh=False)
    with k.fs.open(k.root, crashes.DB, "rw") as f:  # scribble over page 2
        k.fs.seek(f, 4096)
        k.fs.write(f, b"\xff" * 4096)
    k.shutdown()
    what, _ = crashes._check(image, mode, committed)
    assert what.startswith(("malformed", "unreadable")), what


def test_the_expected_table_is_the_start_plus_whole_transactions() -> None:
    assert len(crashes.expected_rows(0)) == crashes.BASE_ROWS
    grown = crashes.expected_rows(3)
    assert len(grown) == crashes.BASE_ROWS + 3
    assert grown[1][1] == "updated by transaction 1"
    assert Mode("persist", "full", False).lowest(5) == 4
    assert Mode("persist", "extra", False).lowest(5) == 5
