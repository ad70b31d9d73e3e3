"""A native part is tried once per process, and when it cannot be had the reason is kept.

What if two threads ask for it first at once? What if its build fails, or it is
switched off, or its loader has a bug? One build, the Python twin with a reason,
nothing built at all, and the bug raised (not taken for "no compiler here").
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from vino import doctor
from vino.cli import main
from vino.graft import nativepart
from vino.graft.nativepart import NativePart


def test_first_callers_racing_share_one_build() -> None:
    calls: list[int] = []
    start = threading.Barrier(4)

    def load() -> str:
        calls.append(1)
        return "loaded"

    part = NativePart("test part", load, listed=False)
    got: list[str | None] = []

    def ask() -> None:
        start.wait()
        got.append(part.get())

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and got == ["loaded"] * 4
    assert part.get() == "loaded" and part.reason == "" and not part.failed


def test_a_part_switched_off_builds_nothing_and_says_which_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def load() -> str:
        raise AssertionError("built although switched off")

    monkeypatch.setenv("VINO_TEST_B", "python")
    part = NativePart("test part", load, off=("VINO_TEST_A", "VINO_TEST_B"), listed=False)
    assert part.get() is None
    assert "VINO_TEST_B=python" in part.reason and not part.failed


def test_a_failed_build_is_tried_once_and_its_reason_kept() -> None:
    calls: list[int] = []

    def load() -> Path:
        calls.append(1)
        raise OSError("native x build failed: error: expected ';'")

    part = NativePart("test part", load, listed=False)
    assert part.get() is None and part.get() is None
    assert calls == [1] and part.failed and "expected ';'" in part.reason
    again = part.again()  # a fresh try, the first part left as it is
    assert again.get() is None and calls == [1, 1] and part.reason == again.reason


def test_a_bug_in_a_loader_is_raised_not_taken_for_a_missing_compiler() -> None:
    calls: list[int] = []

    def load() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("a bug")
        return "loaded"

    part = NativePart("test part", load, listed=False)
    with pytest.raises(TypeError):
        part.get()
    assert not part.tried and part.reason == ""
    assert part.get() == "loaded"  # nothing was recorded: the next call tried again


def test_doctor_names_every_native_part_and_fails_with_a_broken_ones_reason(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    names = [s.name for s in doctor.check()]
    assert {"fast path", "stack guard", "epoch ticker", "plain read"} <= set(names)

    def broken() -> str:
        raise OSError("native broken build failed: zig: error: unknown flag")

    monkeypatch.setattr(nativepart, "_PARTS", [*nativepart.parts()])
    NativePart("broken part", broken)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "broken part" in out and "unknown flag" in out
