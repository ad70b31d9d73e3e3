"""``vino bench sqlite`` and ``vino bench tpch``: both contenders, same checked work, one run."""

from __future__ import annotations

import statistics

import pytest

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


def test_tpch_bench_loads_both_and_compares_all_22_answers_in_every_round() -> None:
    from vino.bench import sqlite_tpch

    r = sqlite_tpch.run(sf=0.001, load_rounds=2, query_rounds=3)
    assert r.differ == []
    assert set(r.query_s["stock"]) == set(r.query_s["vino"]) == set(range(1, 23))
    assert r.db_bytes["vino"] > 0 and r.load_s["vino"] > 0
    assert all(len(r.load_rounds_s[w]) == 2 for w in ("stock", "vino"))
    assert r.rounds == 3
    for who, qs in r.query_rounds_s.items():
        for n, cpu in qs.items():
            assert len(cpu) == 3
            assert r.query_s[who][n] == statistics.median(cpu[1:])  # not the cold one
    data = r.as_dict()
    assert all(len(v) == 2 for v in data["round_ratios"].values())  # the warm rounds
    assert set(data["cold_ratio"]) == set(data["round_ratios"])
    text = sqlite_tpch.render(r)
    assert "**22 queries**" in text and "The cold round" in text


def test_tpch_bench_refuses_zero_query_rounds() -> None:
    from vino.bench import sqlite_tpch

    with pytest.raises(ValueError, match="query_rounds"):
        sqlite_tpch.run(sf=0.001, query_rounds=0)
