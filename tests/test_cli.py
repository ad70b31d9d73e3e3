"""Claims about the ``vino`` command line: exit statuses, exact reasons, reproducible builds.

Exit status contract (cli.py): 0 on success; 1 when a check failed (demo) or a graft
was rejected (graft check) or would not build; 2 on bad usage or input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vino.cli import main
from vino.sdk.build import SAMPLES_DIR, SDK_DIR

HOSTILE = SDK_DIR / "hostile"
POINTS = ["fs.access", "fs.filter", "fs.readahead", "sched.pick", "vm.evict"]

# The point each hostile graft is written for (by its file name's prefix).
HOSTILE_POINT = {"access": "fs.access", "evict": "vm.evict", "filter": "fs.filter",
                 "sched": "sched.pick", "readahead": "fs.readahead",
                 "forbidden": "fs.readahead"}
REJECTED_AT_LOAD = {
    "forbidden_import.wat": 'import env.system: grafts may import only from module "vino"',
}


def _point_of(path: Path) -> str:
    return HOSTILE_POINT[path.name.split("_")[0]]


def test_demo_runs_and_every_check_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "checks held" in out
    assert "FAILED" not in out
    for point in POINTS:
        assert point in out


@pytest.mark.parametrize("sample,point", [
    ("null.wasm", "fs.readahead"), ("readahead_stride.wasm", "fs.readahead"),
    ("evict_keep.wasm", "vm.evict"), ("sched_interactive.wasm", "sched.pick"),
    ("chacha20_filter.wasm", "fs.filter"),
])
def test_graft_check_accepts_every_sample_at_its_point(
        capsys: pytest.CaptureFixture[str], sample: str, point: str) -> None:
    path = SAMPLES_DIR / sample
    assert main(["graft", "check", str(path), "--point", point]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {path} at {point}: {path.stat().st_size} bytes")


def test_graft_check_as_root_checks_a_global_graft(capsys: pytest.CaptureFixture[str]) -> None:
    path = SAMPLES_DIR / "null.wasm"
    assert main(["graft", "check", str(path), "--point", "fs.readahead", "--as", "root"]) == 0
    assert capsys.readouterr().out.startswith(f"OK {path} at fs.readahead")


@pytest.mark.parametrize("name", sorted(p.name for p in HOSTILE.glob("*.wat")))
def test_graft_check_rejects_exactly_the_hostile_grafts_a_load_check_can_see(
        capsys: pytest.CaptureFixture[str], name: str) -> None:
    path = HOSTILE / name
    point = _point_of(path)
    code = main(["graft", "check", str(path), "--point", point])
    out = capsys.readouterr().out
    if name in REJECTED_AT_LOAD:
        assert code == 1
        assert out == f"REJECTED {path} at {point}: {REJECTED_AT_LOAD[name]}\n"
    else:
        # Misbehaviour at run time (loops, traps, bad answers) passes every load check;
        # the transaction catches it (tests/kernel/test_points.py).
        assert code == 0
        assert out.startswith(f"OK {path} at {point}")


def test_graft_check_names_a_missing_entry(capsys: pytest.CaptureFixture[str]) -> None:
    path = SAMPLES_DIR / "null.wasm"
    assert main(["graft", "check", str(path), "--point", "vm.evict"]) == 1
    assert capsys.readouterr().out == (
        f"REJECTED {path} at vm.evict: missing export 'vino_evict' (a function () -> (i32))\n")


def test_graft_check_rejects_text_that_is_not_webassembly(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "garbage.wat"
    path.write_text("(module (this is not wat))")
    assert main(["graft", "check", str(path), "--point", "fs.readahead"]) == 1
    assert capsys.readouterr().out.startswith(f"REJECTED {path} at fs.readahead: ")


def test_graft_check_of_a_missing_file_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "nothing.wasm"
    assert main(["graft", "check", str(path), "--point", "fs.readahead"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"vino graft check: no such file: {path}\n"


def test_graft_check_of_an_unknown_point_is_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    path = SAMPLES_DIR / "null.wasm"
    assert main(["graft", "check", str(path), "--point", "no.such"]) == 2
    err = capsys.readouterr().err
    assert err == (f"vino graft check: no graft point 'no.such' "
                   f"(points: {', '.join(POINTS)})\n")


def test_graft_check_without_a_point_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["graft", "check", str(SAMPLES_DIR / "null.wasm")])
    assert info.value.code == 2


@pytest.mark.parametrize("sample", sorted(p.stem for p in SAMPLES_DIR.glob("*.c")))
def test_graft_build_reproduces_the_committed_wasm(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: str) -> None:
    out = tmp_path / f"{sample}.wasm"
    assert main(["graft", "build", str(SAMPLES_DIR / f"{sample}.c"), "-o", str(out)]) == 0
    committed = (SAMPLES_DIR / f"{sample}.wasm").read_bytes()
    assert out.read_bytes() == committed
    assert capsys.readouterr().out == f"{out}: {len(committed)} bytes\n"


def test_graft_build_of_a_missing_source_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "x.wasm"
    src = tmp_path / "nothing.c"
    assert main(["graft", "build", str(src), "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"vino graft build: no such file: {src}\n"
    assert not out.exists()


def test_graft_build_into_a_missing_directory_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir" / "null.wasm"
    assert main(["graft", "build", str(SAMPLES_DIR / "null.c"), "-o", str(out)]) == 2
    assert str(out) in capsys.readouterr().err
    assert not out.exists()


def test_graft_build_of_broken_c_fails_with_the_compilers_message(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "broken.c"
    src.write_text('#include "vino.h"\nint f(void) { return undeclared_name; }\n')
    assert main(["graft", "build", str(src), "-o", str(tmp_path / "broken.wasm")]) == 1
    assert "undeclared_name" in capsys.readouterr().err
    assert not (tmp_path / "broken.wasm").exists()


def test_bench_micro_runs_a_short_round(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "micro", "--rounds", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    figures = result["figures"]
    for name in ("raw", "public", "protected", "abort", "dispatch"):
        assert figures[name]["median_us"] > 0


def test_stats_lists_all_five_points(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:]] == POINTS


def test_stats_json_counts_the_sample_grafts_calls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--json"]) == 0
    rows = {r["point"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == POINTS
    for point in ("fs.filter", "fs.readahead", "sched.pick", "vm.evict"):
        assert rows[point]["commits"] > 0 and rows[point]["aborts"] == {}


def test_no_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
