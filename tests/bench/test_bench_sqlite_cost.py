"""``vino bench sqlite`` and ``vino bench tpch``: both contenders, same checked work, one run."""

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


def test_tpch_bench_loads_both_and_compares_all_22_answers() -> None:
    from vino.bench import sqlite_tpch

    r = sqlite_tpch.run(sf=0.001, load_rounds=2)
    assert r.differ == []
    assert set(r.query_s["stock"]) == set(r.query_s["vino"]) == set(range(1, 23))
    assert r.db_bytes["vino"] > 0 and r.load_s["vino"] > 0
    assert all(len(r.load_rounds_s[w]) == 2 for w in ("stock", "vino"))
    assert "**22 queries**" in sqlite_tpch.render(r)
