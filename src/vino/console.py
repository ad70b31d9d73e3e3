"""The terminal: tables, progress and colour through ``rich``; plain text elsewhere.

Every command of ``vino`` prints through here, so what a person sees at a
terminal (boxed tables, coloured verdicts, a live progress line) and what a
pipe, a file or a test sees (plain aligned text from ``vino.report``, one
progress line per step on stderr) come from the same calls:

    out = Output(sys.stdout)
    out.heading("Part 1")
    out.table(rows, ["point", "result"])
    with progress("reliability", total=12) as step:
        for campaign in campaigns:
            step(campaign.name)           # advances the bar by one

Invariant: colour and live redrawing happen only when the stream is a terminal
(``isatty()``) and ``NO_COLOR`` is unset; otherwise the bytes written are the
plain renderings below, identical from run to run apart from the numbers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from vino.report import Checks, plain_table

__all__ = ["Output", "is_terminal", "progress"]

# Words that colour a table cell at a terminal: a verdict reads at a glance.
_GOOD = frozenset({"yes", "ok", "OK", "held", "intact", "none", "met"})
_BAD = frozenset({"no", "NO", "FAILED", "LOST", "lost", "missed"})


def is_terminal(stream: IO[str]) -> bool:
    """True if ``stream`` is an interactive terminal that may be coloured."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ


def _style(cell: str) -> str:
    from rich.markup import escape

    text = escape(cell)
    if cell in _GOOD:
        return f"[green]{text}[/green]"
    if cell in _BAD or cell.startswith(("FAILED", "NO ")):
        return f"[bold red]{text}[/bold red]"
    return text


class Output:
    """Where a command's results go: ``rich`` at a terminal, plain text otherwise."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.rich = is_terminal(stream)

    def write(self, text: str) -> None:
        """Plain text, as it is."""
        self.stream.write(text)

    def heading(self, text: str) -> None:
        """A section title (``== text ==`` when plain)."""
        if self.rich:
            from rich.console import Console
            from rich.rule import Rule

            Console(file=self.stream).print(Rule(text, style="cyan"))
        else:
            self.stream.write(f"\n== {text} ==\n\n")

    def table(self, rows: list[list[str]], head: list[str], title: str | None = None) -> None:
        """A table; verdict cells (yes / no / FAILED ...) are coloured at a terminal."""
        if not self.rich:
            self.stream.write(plain_table(rows, head) + "\n")
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(*head, title=title, header_style="bold")
        for r in rows:
            t.add_row(*(_style(str(c)) for c in r))
        Console(file=self.stream).print(t)

    def verdict(self, ok: bool, text: str) -> None:
        """A closing line that says whether everything held."""
        if self.rich:
            from rich.console import Console

            Console(file=self.stream).print(text, style="bold green" if ok else "bold red",
                                            markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")

    def checks(self, checks: Checks) -> None:
        """The closing lines of a run of checks: how many held, then each failure."""
        first, *failures = checks.summary()
        self.verdict(checks.ok, first)
        for line in failures:
            self.verdict(False, line)

    def markdown(self, text: str) -> None:
        """Markdown text: rendered at a terminal, written as it is otherwise."""
        if self.rich:
            from rich.console import Console
            from rich.markdown import Markdown

            Console(file=self.stream).print(Markdown(text))
        else:
            self.stream.write(text + "\n")


@contextmanager
def progress(label: str, total: int | None = None,
             stream: IO[str] | None = None) -> Iterator[Callable[[str], None]]:
    """A progress reporter for a long run: call it with each step's description.

    At a terminal: a live bar (a spinner when ``total`` is unknown) with the
    elapsed time, erased at the end. Otherwise: one ``  description`` line per
    step, flushed, so a log shows where a long run is.
    """
    out = stream if stream is not None else sys.stderr
    if not is_terminal(out):
        def line(msg: str) -> None:
            print(f"  {msg}", file=out, flush=True)

        yield line
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("[bold]{task.fields[label]}"),
               *([BarColumn(), MofNCompleteColumn()] if total else []),
               TimeElapsedColumn(), TextColumn("{task.description}")]
    with Progress(*columns, console=Console(file=out), transient=True) as bar:
        task = bar.add_task("", total=total, label=label)

        def step(msg: str) -> None:
            bar.update(task, description=msg, advance=1)

        yield step
