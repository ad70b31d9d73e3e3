"""``vino bench sqlite``: both contenders run the same checked workload in one run."""

from __future__ import annotations

from vino.bench import sqlite_cost


def test_stock_and_vino_each_run_every_phase_and_are_compared() -> None:
    result = sqlite_cost.run(rounds=2, rows=500)
    for who in sqlite_cost.CONTENDERS:
        for phase in sqlite_cost.PHASES:
            assert len(result.cpu_s[who][phase]) == 2
            assert all(t > 0 for t in result.cpu_s[who][phase])
    data = result.as_dict()
    assert set(data["ratio"]) == {*sqlite_cost.PHASES, "total"}
    assert "**total**" in sqlite_cost.render(result)
