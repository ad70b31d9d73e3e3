"""Targets: a measured value, a limit and whether it was met, as plain data."""

from __future__ import annotations

from typing import Any, Final

AT_MOST: Final = "≤"
AT_LEAST: Final = "≥"


def target(what: str, value: float | None, op: str, limit: float, unit: str) -> dict[str, Any]:
    """One checked target; ``value`` None means it could not be measured (not met)."""
    if op not in (AT_MOST, AT_LEAST):
        raise ValueError(f"unknown comparison {op!r}")
    ok = value is not None and (value <= limit if op == AT_MOST else value >= limit)
    return {"what": what, "value": value, "op": op, "limit": limit, "unit": unit, "ok": ok}


def render(checks: list[dict[str, Any]], markdown_emphasis: bool = True) -> str:
    """A markdown table of targets; a missed one reads ``**no**`` (plain ``no`` without
    ``markdown_emphasis``)."""
    lines = ["| target | measured | limit | met |", "|---|---|---|---|"]
    for c in checks:
        v = c["value"]
        val = "n/a" if v is None else f"{v:,.2f} {c['unit']}".strip()
        missed = "**no**" if markdown_emphasis else "no"
        lines.append(f"| {c['what']} | {val} | {c['op']} {c['limit']:,g} {c['unit']} | "
                     f"{'yes' if c['ok'] else missed} |".replace("  |", " |"))
    return "\n".join(lines)
