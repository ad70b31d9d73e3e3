"""The README's comparison: one plugin in vino, Extism, wasmtime-py and pluggy.

Quick mode checks the structure and what the probes found; the figures are
measured, not asserted (speed is the benchmark's business, not a test's).
"""

from __future__ import annotations

from typing import Any

import pytest

from vino.bench import plugins


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return plugins.run(rounds=2, batch_s=0.005)


def test_every_system_computes_the_same_discount() -> None:
    shop = plugins.VinoShop()
    try:
        shop.install(plugins._RULE)
        for price, qty in ((1000, 12), (999, 9), (0, 50), (7, 10)):
            want = plugins._python_rule(price, qty)
            assert shop.point("line", price, qty) == want
            assert plugins.PublicWasmtime()(price, qty) == want
            assert plugins._pluggy(plugins._python_rule)(price, qty) == want
            if plugins.extism_available():
                assert plugins.ExtismPlugin()(price, qty) == want
    finally:
        shop.close()


def test_probes_find_what_each_system_does_with_a_misbehaving_plugin(
        result: dict[str, Any]) -> None:
    p = result["probes"]
    assert p["vino"]["trap"].startswith("gets 0 (the default)")
    assert p["vino"]["range"].startswith("gets 0")
    assert "stopped after" in p["vino"]["loop"]
    assert p["vino"]["state"].startswith("undone")
    assert p["wasmtime-py"]["trap"] == "raises Trap"
    assert p["wasmtime-py"]["range"].startswith("gets -5")
    assert p["wasmtime-py"]["state"].startswith("kept")
    assert p["pluggy"]["trap"] == "raises RuntimeError"
    assert p["pluggy"]["state"].startswith("kept")


def test_extism_is_measured_or_said_not_to_run(result: dict[str, Any]) -> None:
    table = plugins.render(result)
    if result["extism"]:
        assert "Extism" in result["per_call_us"]
        assert "stopped after" in result["probes"]["Extism"]["loop"]
    else:
        assert "cannot run here" in table
    for system in ("vino", "wasmtime-py", "pluggy"):
        assert result["per_call_us"][system]["median_us"] > 0
    assert table.count("\n") >= 9
