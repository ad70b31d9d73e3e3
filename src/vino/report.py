"""Report tables and checks: the text every tool prints, built in one place.

Pure text, no terminal: ``vino.console.Output`` decides how it reaches a person
(colour at a terminal), this module decides what it says.

- ``Checks``: the demo's verdicts. Each ``check(what, ok, detail)`` records one
  line; ``summary()`` gives the closing lines ("N of M checks held.", then one
  ``FAILED: what: detail`` line per failure). ``vino demo`` and ``vino demo
  sqlite`` exit 0 only if every check held.
- ``target(what, value, op, limit, unit)``: one benchmark figure held to a limit
  (``AT_MOST`` / ``AT_LEAST``) as plain data; ``render_targets`` lists them.
- ``plain_table(rows, head)``: columns padded to their widest cell (the demo's
  tables in a pipe); ``markdown_table(head, rows)``: the benchmarks' tables;
  ``markdown_row(cells)``: one row of one, for tables built line by line.

Invariant: rendering is a function of the data alone (no clock, no terminal), so
the same results print the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["AT_LEAST", "AT_MOST", "Check", "Checks", "markdown_row", "markdown_table",
           "plain_table", "render_targets", "target"]

AT_MOST: Final = "≤"
AT_LEAST: Final = "≥"


# ---- checks -----------------------------------------------------------------------------------

@dataclass(slots=True)
class Check:
    """One verdict: what was checked, whether it held, and what was seen."""

    what: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Checks:
    """The verdicts of one run, in the order they were made."""

    checks: list[Check] = field(default_factory=list)

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        """Record a verdict; returns it, so a caller can go on with it."""
        self.checks.append(Check(what, bool(ok), detail))
        return bool(ok)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> list[str]:
        """The closing lines: the count that held, then each failure."""
        failed = self.failed
        return ([f"\n{len(self.checks) - len(failed)} of {len(self.checks)} checks held."]
                + [f"FAILED: {c.what}: {c.detail}" for c in failed])


# ---- targets ----------------------------------------------------------------------------------

def target(what: str, value: float | None, op: str, limit: float, unit: str) -> dict[str, Any]:
    """One checked target; ``value`` None means it could not be measured (not met)."""
    if op not in (AT_MOST, AT_LEAST):
        raise ValueError(f"unknown comparison {op!r}")
    ok = value is not None and (value <= limit if op == AT_MOST else value >= limit)
    return {"what": what, "value": value, "op": op, "limit": limit, "unit": unit, "ok": ok}


def render_targets(checks: list[dict[str, Any]], markdown_emphasis: bool = True) -> str:
    """A markdown table of targets; a missed one reads ``**no**`` (plain ``no`` without
    ``markdown_emphasis``)."""
    missed = "**no**" if markdown_emphasis else "no"
    rows = []
    for c in checks:
        v = c["value"]
        val = "n/a" if v is None else f"{v:,.2f} {c['unit']}".strip()
        rows.append([c["what"], val, f"{c['op']} {c['limit']:,g} {c['unit']}".strip(),
                     "yes" if c["ok"] else missed])
    return markdown_table(["target", "measured", "limit", "met"], rows)


# ---- tables -----------------------------------------------------------------------------------

def plain_table(rows: list[list[str]], head: list[str]) -> str:
    """Columns padded to their widest cell, a dashed rule under the head."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]
    return "\n".join(out)


def markdown_row(cells: Iterable[object]) -> str:
    """``| a | b |``; an empty cell is ``| |``."""
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"


def markdown_table(head: Sequence[object], rows: Iterable[Iterable[object]]) -> str:
    """A markdown table: the head, the ``|---|`` rule, one line a row."""
    return "\n".join([markdown_row(head), "|" + "---|" * len(head),
                      *(markdown_row(r) for r in rows)])
