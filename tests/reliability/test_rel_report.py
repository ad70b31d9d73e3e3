"""``vino reliability``: the campaigns run end to end and the report says what they found.

What if a campaign finds a problem? The command exits 1 and the report lists it. What
if ``--soak`` is nonsense? Exit 2 before anything runs. The figures themselves are
asserted by the other test_rel_* files; here, that the report carries them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vino import crashloop
from vino.cli import main
from vino.testing import fuzz
from vino.testing import report as reliability
from vino.testing.kernel_loops import DeviceFaultTally, kernel_fault_loops
from vino.testing.loops import LoopResult, graft_fault_loops

TINY = reliability.Settings(soak_s=1.0, kernel_soak_s=0.5, walks=10, walk_steps=30,
                            mutants=60, outputs_per_point=2, wild_calls=10, crash_ops=12)


@pytest.fixture(scope="module")
def campaigns_once() -> Iterator[None]:
    """The deterministic campaigns that take most of a run (the fault-injection loops,
    the power cuts) run once for this module: its tests check what the report and the
    exit status make of their results, which test_rel_fault_loops.py and
    tests/kernel/test_journal.py assert. Later runs get the first run's results as they
    were (the kernel loops' device tally too)."""
    real_crash = crashloop.run
    graft: list[list[LoopResult]] = []
    kernel: list[tuple[list[LoopResult], DeviceFaultTally]] = []
    crash: list[crashloop.CrashFigures] = []

    def graft_loops() -> list[LoopResult]:
        if not graft:
            graft.append(graft_fault_loops())
        return list(graft[0])  # the report adds to the list it is given

    def kernel_loops(workdir: Path | None = None,
                     tally: DeviceFaultTally | None = None) -> list[LoopResult]:
        if not kernel:
            first = DeviceFaultTally()
            kernel.append((kernel_fault_loops(workdir, first), first))
        loops, first = kernel[0]
        if tally is not None:
            tally.runs, tally.fs_damaged = first.runs, first.fs_damaged
            tally.broken.update(first.broken)
        return list(loops)

    def crash_loop(workdir: Path, *args: Any, **kw: Any) -> crashloop.CrashFigures:
        if not crash:
            crash.append(real_crash(workdir, *args, **kw))
        return crash[0]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reliability, "graft_fault_loops", graft_loops)
        mp.setattr(reliability, "kernel_fault_loops", kernel_loops)
        mp.setattr(crashloop, "run", crash_loop)
        yield


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, campaigns_once: None) -> None:
    monkeypatch.setattr(reliability, "QUICK", TINY)


def test_vino_reliability_writes_a_report_that_says_nothing_was_lost(
        tiny: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "RELIABILITY.md"
    assert main(["reliability", "--quick", "--report", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "**Result: nothing lost.**" in text
    assert "`vino reliability --quick --report " in text  # how to regenerate it
    for heading in ("## Summary", "## 1. Fault injection", "## 2. Transactions against a "
                    "model", "## 3. Concurrency under load", "## 4. Hostile input",
                    "## 5. Rights", "## 6. Power cuts", "## Findings", "## Rerun"):
        assert heading in text
    assert "| fs.access | ✓ ✓ · ✓ | ✓ ✗ · ✗ | ✓ ✗ · ✗ | ✓ ✗ · ✗ |" in text
    err = capsys.readouterr().err
    assert "rights matrix" in err and "report written to" in err


def test_vino_reliability_exits_1_and_lists_the_problems_when_a_campaign_finds_one(
        tiny: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    real = fuzz.hostile_outputs

    def leaky(*args: object, **kw: object) -> fuzz.HostileResult:
        r = real(*args, **kw)  # type: ignore[arg-type]
        r.problems.append("an invalid answer was let through")
        return r

    monkeypatch.setattr(reliability, "hostile_outputs", leaky)
    assert main(["reliability", "--quick", "--soak", "0.5"]) == 1
    captured = capsys.readouterr()
    assert "**Result: 1 problems**" in captured.out
    assert "- random outputs: an invalid answer was let through" in captured.out
    assert "1 problems" in captured.err


@pytest.mark.parametrize("soak", ["0", "-3"])
def test_vino_reliability_refuses_a_soak_that_is_not_positive(
        soak: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reliability", "--soak", soak]) == 2
    assert "--soak must be positive" in capsys.readouterr().err


def test_regenerating_the_report_keeps_its_hand_written_sections() -> None:
    from vino.testing.report import keep_hand_written

    old = ("# R\n\n## 1. Old\nx\n\n## 6. Engine (hand-written; kept)\nfigures\nmore\n\n"
           "## Findings\n- a\n")
    new = "# R\n\n## 1. New\ny\n\n## Findings\n- b\n"
    got = keep_hand_written(old, new)
    assert got == ("# R\n\n## 1. New\ny\n\n## 6. Engine (hand-written; kept)\nfigures\nmore\n\n"
                   "## Findings\n- b\n")
    assert keep_hand_written(new, new) == new
    assert keep_hand_written(old, "# R\n") == "# R\n\n## 6. Engine (hand-written; kept)\n" \
        "figures\nmore\n\n"
