"""The terminal output: rich tables, colour and progress at a terminal; plain text in a
pipe, a file or a test, byte for byte the same layout every run."""

from __future__ import annotations

import io

import pytest

from vino.console import Output, progress
from vino.report import plain_table


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


ROWS = [["fs.readahead", "yes"], ["vm.evict", "NO"]]


def test_plain_when_the_output_is_not_a_terminal() -> None:
    out = io.StringIO()
    o = Output(out)
    o.heading("Part 1")
    o.table(ROWS, ["point", "intact"])
    o.verdict(False, "1 of 2 checks held.")
    text = out.getvalue()
    assert "\x1b[" not in text  # no escape sequences in a pipe
    assert "== Part 1 ==" in text
    assert plain_table(ROWS, ["point", "intact"]) in text
    assert text.endswith("1 of 2 checks held.\n")


def test_rich_tables_and_colour_at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = Tty()
    o = Output(out)
    o.table(ROWS, ["point", "intact"])
    text = out.getvalue()
    assert "\x1b[" in text  # coloured
    assert "┃" in text or "│" in text  # a drawn table, not padded text
    assert "fs.readahead" in text and "vm.evict" in text


def test_no_color_turns_a_terminal_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = Tty()
    Output(out).table(ROWS, ["point", "intact"])
    assert out.getvalue() == plain_table(ROWS, ["point", "intact"]) + "\n"


def test_progress_is_one_line_per_step_when_not_a_terminal() -> None:
    err = io.StringIO()
    with progress("vino bench", total=2, stream=err) as step:
        step("round 1/2")
        step("round 2/2")
    assert err.getvalue() == "  round 1/2\n  round 2/2\n"


def test_progress_draws_a_bar_at_a_terminal_and_erases_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    err = Tty()
    with progress("vino bench", total=2, stream=err) as step:
        step("round 1/2")
        step("round 2/2")
    assert "vino bench" in err.getvalue()
