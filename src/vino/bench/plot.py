"""The overhead table as a picture: vino on this machine vs VINO 1996, per row, per graft.

``plot(result, path)`` draws one panel per sample graft: for each of the
paper's rows a pair of bars (vino's median with its p10..p90 as an error bar,
and the 1996 figure), on a log scale, with the 1996 ÷ vino ratio above each
pair. Rows vino does not have (Lock where the point resolves no lock) and
zeros of 1996 are left out. Needs matplotlib (the ``dev`` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from vino.bench import paper

FIGSIZE_IN: Final = (13.0, 8.5)
DPI: Final = 120
VINO_COLOUR: Final = "#1f77b4"
OLD_COLOUR: Final = "#b0b0b0"
BAR_WIDTH: Final = 0.38
FLOOR_US: Final = 0.005  # log-scale floor for bars of (near) zero


def plot(result: dict[str, Any], path: Path) -> Path:
    """Draw ``result`` (``vino.bench.table.run``'s, or the suite's) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tab = result.get("table", result)
    grafts = tab["grafts"]
    fig, axes = plt.subplots(2, 2, figsize=FIGSIZE_IN, sharey=True)
    for ax, key in zip(axes.flat, paper.GRAFTS, strict=True):
        g = grafts.get(key)
        if g is None:
            ax.set_visible(False)
            continue
        rows = paper.ROWS
        xs = range(len(rows))
        med, lo, hi, old = [], [], [], []
        for row in rows:
            d = g["rows"][row]
            m = max(d["median_us"], FLOOR_US) if d else 0.0
            med.append(m)
            lo.append(m - max(d["p10_us"], FLOOR_US) if d else 0.0)
            hi.append(max(d["p90_us"], FLOOR_US) - m if d else 0.0)
            old.append(float(paper.VINO_1996_US[key][row]))
        left = [x - BAR_WIDTH / 2 for x in xs]
        right = [x + BAR_WIDTH / 2 for x in xs]
        ax.bar(left, [m if m else float("nan") for m in med], BAR_WIDTH,
               yerr=[[max(v, 0.0) for v in lo], [max(v, 0.0) for v in hi]],
               color=VINO_COLOUR, label="vino (this machine, median, p10..p90)", capsize=2)
        ax.bar(right, [o if o else float("nan") for o in old], BAR_WIDTH, color=OLD_COLOUR,
               label="VINO 1996")
        for x, row, m, o in zip(xs, rows, med, old, strict=True):
            if m and o:
                ax.annotate(f"{o / m:.0f}x" if o / m >= 10 else f"{o / m:.1f}x",
                            (x, max(m, o)), textcoords="offset points", xytext=(0, 3),
                            ha="center", fontsize=7)
            elif not m:
                ax.annotate("n/a", (x - BAR_WIDTH / 2, FLOOR_US * 2), ha="center",
                            fontsize=7, rotation=90)
            del row
        ax.set_yscale("log")
        ax.set_xticks(list(xs), list(rows), rotation=30, fontsize=8)
        ax.set_title(f"{g['title']} ({g['sample']})", fontsize=10)
        ax.grid(axis="y", which="major", alpha=0.3)
    axes.flat[0].set_ylabel("µs per invocation (log)")
    axes.flat[2].set_ylabel("µs per invocation (log)")
    axes.flat[0].legend(fontsize=8, loc="upper left")
    m = result.get("machine", {})
    fig.suptitle("Protected graft invocation: vino (Wasm + transactions, "
                 f"{m.get('cpu', 'this machine')}) vs VINO 1996 (MiSFIT + transactions)",
                 fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
