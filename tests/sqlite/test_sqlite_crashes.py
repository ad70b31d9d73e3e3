"""Crash loops: SQLite transactions on vino, the power cut at the Nth device write.

Every journal mode (DELETE, TRUNCATE, PERSIST) x ``synchronous`` (FULL, EXTRA) x
without / with the encryption filter graft, with each crash model (cut, torn,
lost). The bounded loop (every ``CI_STRIDE``-th write, a different offset per
mode) runs in CI; the full loop (every write) is marked slow. After every cut the
image mounts, the kernel's invariants hold, ``integrity_check`` is ok and the
table is the start plus whole transactions, as many as the mode promises.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vino.kernel.crash import CrashModel, CrashPlan
from vino.kernel.kernel import Kernel
from vino.sqlite import crashes
from vino.sqlite.crashes import Mode

CI_STRIDE = 29  # the bounded loop tries every 29th write (~3 per model and mode)


@pytest.mark.parametrize("mode", crashes.MODES, ids=lambda m: m.name)
def test_a_power_cut_at_every_nth_write_loses_no_committed_transaction(
        mode: Mode, tmp_path: Path) -> None:
    offset = crashes.MODES.index(mode) % CI_STRIDE + 1
    fig = crashes.loop(tmp_path, mode, stride=CI_STRIDE, first=offset)
    assert fig.writes > CI_STRIDE  # the workload is long enough to be cut several times
    assert fig.failures == []
    assert all(n >= 2 for n in fig.tried.values()), fig.tried
    assert fig.survived == fig.tried


@pytest.mark.slow
@pytest.mark.parametrize("mode", crashes.MODES, ids=lambda m: m.name)
def test_a_power_cut_at_any_write_loses_no_committed_transaction(
        mode: Mode, tmp_path: Path) -> None:
    fig = crashes.loop(tmp_path, mode, stride=1)
    assert fig.failures == []
    assert fig.survived == fig.tried == {m.value: fig.writes for m in CrashModel}


def test_a_power_cut_in_the_middle_leaves_every_committed_row(tmp_path: Path) -> None:
    pc = crashes.power_cut(tmp_path, Mode("delete", "extra", encrypted=False))
    assert 0 < pc.at_write < pc.writes and 0 < pc.committed < crashes.TXNS
    assert pc.ok, pc.problem
    assert pc.committed <= pc.found <= pc.committed + 1


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


def test_the_figures_render_as_a_table_naming_every_failure() -> None:
    ok = crashes.CrashFigures(Mode("delete", "full", False), 10, {"cut": 10, "torn": 10,
                              "lost": 10}, {"cut": 10, "torn": 10, "lost": 10})
    bad = crashes.CrashFigures(Mode("persist", "extra", True), 9, {"cut": 9}, {"cut": 8},
                               [crashes.Failure("persist/extra/encrypted", "cut", 4, "wiped")])
    text = crashes.render([ok, bad])
    assert "| DELETE | FULL | no | 10 | 10 / 10 | 10 / 10 | 10 / 10 |" in text
    assert "| PERSIST | EXTRA | yes | 9 | 8 / 9 | 0 / 0 | 0 / 0 |" in text
    assert "1 failure(s)." in text and "cut at write 4: wiped" in text


def test_vino_crashloop_sqlite_refuses_a_nonsense_stride(
        capsys: pytest.CaptureFixture[str]) -> None:
    from vino.cli import main

    assert main(["crashloop", "sqlite", "--stride", "0"]) == 2
    assert "--stride" in capsys.readouterr().err


def test_a_regenerated_reliability_report_keeps_the_sqlite_crash_figures() -> None:
    from vino.testing.report import keep_hand_written

    page = Path(__file__).parents[2] / "docs" / "RELIABILITY.md"
    old = page.read_text(encoding="utf-8")
    heading = next(line for line in old.splitlines()
                   if line.startswith("## ") and "Power cuts under SQLite" in line)
    new = "# Reliability report\n\n## 6. Power cuts\n\nregenerated\n\n## Findings\n\n- y\n"
    kept = keep_hand_written(old, new)
    assert kept.index("regenerated") < kept.index(heading) < kept.index("## Findings")
    assert "| DELETE | EXTRA | yes |" in kept  # the figures came along
