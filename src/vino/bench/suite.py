"""``vino bench``: run the benchmarks, render them for people or machines.

    vino bench [table|savings|scale|all] [--quick] [--json] [--plot FILE.png]

- ``table`` (default): the paper's overhead table on this machine beside VINO
  1996, with today's peers measured in the same rounds (``vino.bench.table``);
- ``savings``: device time saved against protection spent (``vino.bench.savings``);
- ``scale``: 1 / 1,000 / 100,000 installed grafts (``vino.bench.scale``);
- ``all``: the three, the savings using the Totals the table just measured.

``--quick`` runs everything small and fast (a few rounds, short batches, at
most 100 grafts) for CI and tests: structure, not numbers. Progress goes to
stderr. The result is plain data (``--json``) carrying the machine it ran on.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

from vino.bench import paper, savings, scale, setups, table
from vino.bench.timing import Progress
from vino.graft.sandbox import Sandbox
from vino.report import render_targets

WHAT: Final = ("table", "savings", "scale", "all")


@dataclass(frozen=True, slots=True)
class Settings:
    """How long to measure. ``QUICK`` for CI, ``FULL`` for the committed numbers."""

    rounds: int  # interleaved rounds of the table and scale contenders
    batch_s: float  # seconds per contender per round
    min_calls: int
    scale_counts: tuple[int, ...]
    quick: bool


FULL: Final = Settings(rounds=21, batch_s=0.02, min_calls=5, scale_counts=scale.COUNTS,
                       quick=False)
QUICK: Final = Settings(rounds=3, batch_s=0.001, min_calls=2, scale_counts=scale.QUICK_COUNTS,
                        quick=True)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wasmtime": version("wasmtime"),
        "pluggy": version("pluggy"),
        "cryptography": version("cryptography"),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": list(os.getloadavg()),
    }


def run(what: str = "table", *, settings: Settings = FULL, progress: Progress | None = None,
        workdir: Path | None = None) -> dict[str, Any]:
    """Run ``what`` (one of ``WHAT``); return the results as plain data."""
    if what not in WHAT:
        raise ValueError(f"unknown benchmark {what!r} (choose from {', '.join(WHAT)})")
    result: dict[str, Any] = {"machine": machine(), "quick": settings.quick,
                              "settings": {"rounds": settings.rounds,
                                           "batch_s": settings.batch_s}}
    with tempfile.TemporaryDirectory(prefix="vino-bench-") as tmp:
        wd = workdir or Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        if what in ("table", "all"):
            booted: dict[str, setups.Setup] = {}
            shared = Sandbox()  # one engine and one epoch ticker, as in one host
            try:
                for key in paper.GRAFTS:
                    booted[key] = setups.build(key, wd, shared)
                if progress is not None:
                    progress("overhead table: kernels booted, sample grafts installed")
                result["table"] = table.run(booted, rounds=settings.rounds,
                                            batch_s=settings.batch_s,
                                            min_calls=settings.min_calls, progress=progress)
            finally:
                for s in booted.values():
                    s.close()
                shared.close()
        if what in ("savings", "all"):
            per_call = ({k: g["rows"]["Total"]["median_us"]
                         for k, g in result["table"]["grafts"].items()}
                        if "table" in result else None)
            result["savings"] = savings.run(wd, per_call_us=per_call, quick=settings.quick,
                                            progress=progress)
        if what in ("scale", "all"):
            result["scale"] = scale.run(settings.scale_counts, rounds=settings.rounds,
                                        batch_s=settings.batch_s, quick=settings.quick,
                                        progress=progress)
    result["targets"] = [t for part in ("table", "savings", "scale") if part in result
                         for t in result[part]["targets"]]
    return result


def render(result: dict[str, Any], targets: bool = False) -> str:
    """The results as text with markdown tables: figures and ratios.

    The targets the figures are held to are BENCHMARKS.md's business; with
    ``targets=True`` they are appended as a markdown table (measured, limit, met)
    for updating it.
    """
    m = result["machine"]
    out = [f"vino bench on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
           f"wasmtime {m['wasmtime']}, {m['date']}"
           + (" -- QUICK MODE: structure only, numbers not meaningful" if result["quick"]
              else ""), ""]
    if "table" in result:
        out += [table.render(result["table"]), ""]
    if "savings" in result:
        out += ["### When does it pay: device time saved vs protection spent", "",
                savings.render(result["savings"]), ""]
    if "scale" in result:
        out += ["### Scale: many installed grafts", "", scale.render(result["scale"]), ""]
    if targets and result["targets"]:
        met = sum(1 for t in result["targets"] if t["ok"])
        out += [f"### Targets: {met} of {len(result['targets'])} met", "",
                render_targets(result["targets"], markdown_emphasis=False)]
    return "\n".join(out)
