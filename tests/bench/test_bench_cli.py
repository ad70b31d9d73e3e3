"""``vino bench``: the command line, in quick mode (JSON, plot, progress on stderr)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vino import cli


def test_bench_table_quick_prints_json_and_draws_the_plot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    assert cli.main(["bench", "table", "--quick", "--json", "--plot", str(png)]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["quick"] is True
    assert set(result["table"]["grafts"]) == {"readahead", "evict", "sched", "encrypt"}
    assert result["machine"]["wasmtime"] and result["machine"]["python"]
    assert "round 1/" in err  # progress on stderr, not in the JSON
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_default_is_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "VINO 1996" in out and "QUICK MODE" in out
    # Targets belong to BENCHMARKS.md: the results alone, unless asked for.
    assert "Targets" not in out and "**no**" not in out


def test_bench_targets_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "savings", "--quick", "--targets"]) == 0
    out = capsys.readouterr().out
    assert "Targets:" in out and "| target | measured | limit | met |" in out


def test_plot_needs_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "savings", "--quick", "--plot", "x.png"]) == 2


def test_bench_all_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "all", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "When does it pay" in out and "Scale" in out


def test_bench_micro_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    from vino.bench import micro

    r = micro.run(rounds=2, calls=50)
    assert r["figures"]["protected"]["median_us"] > 0
    assert "protected/public" in micro.render(r)
