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
    assert [line.split()[0] for line in lines[2:2 + len(POINTS)]] == POINTS


def test_stats_json_counts_the_sample_grafts_calls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--json"]) == 0
    rows = {r["point"]: r for r in json.loads(capsys.readouterr().out)["points"]}
    assert sorted(rows) == POINTS
    for point in ("fs.filter", "fs.readahead", "sched.pick", "vm.evict"):
        assert rows[point]["commits"] > 0
    # The samples never fail; the one misbehaving read-ahead graft does, once.
    assert rows["fs.readahead"]["aborts"] == {"invalid_result": 1}
    assert all(rows[p]["aborts"] == {} for p in ("fs.filter", "sched.pick", "vm.evict"))


def test_no_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


# ---- building in every language, checking an application's own points -----------------

SHOP_APP = '''
from vino.graft import FunctionPoint, Registry
from vino.graft.point import U32

def _encode(buf, price):
    U32.pack_into(buf, 0, price)
    return ()

def _decode(buf, ret, price):
    return ret

discount = FunctionPoint(name="shop.discount", entry="discount", buffer_size=16,
                         encode=_encode, decode=_decode, default=lambda price: 0,
                         target_type=object)
registry = Registry()
registry.declare(discount)

def make_registry():
    return registry
'''

@pytest.fixture(autouse=True)
def _fresh_shopapp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test imports its own shopapp.py, not an earlier test's."""
    import sys

    monkeypatch.delitem(sys.modules, "shopapp", raising=False)


DISCOUNT_WAT = ('(module (memory (export "memory") 1) '
                '(func (export "vino_buffer") (result i32) (i32.const 0)) '
                '(func (export "discount") (result i32) (i32.const 5)))')


@pytest.mark.parametrize("spec", ["shopapp:registry", "shopapp:make_registry"])
def test_graft_check_against_an_applications_own_registry(
        spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "shopapp.py").write_text(SHOP_APP)
    (tmp_path / "discount.wat").write_text(DISCOUNT_WAT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["graft", "check", "discount.wat", "--point", "shop.discount",
                 "--registry", spec]) == 0
    assert capsys.readouterr().out.startswith("OK discount.wat at shop.discount")
    # The kernel's points are not the application's, and vice versa.
    assert main(["graft", "check", "discount.wat", "--point", "fs.readahead",
                 "--registry", spec]) == 2
    assert "no graft point 'fs.readahead' in " + spec + " (points: shop.discount)" in \
        capsys.readouterr().err


def test_graft_check_registry_rejects_a_graft_missing_the_applications_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "shopapp.py").write_text(SHOP_APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = SAMPLES_DIR / "null.wasm"
    assert main(["graft", "check", str(path), "--point", "shop.discount",
                 "--registry", "shopapp:registry"]) == 1
    assert "discount" in capsys.readouterr().out


@pytest.mark.parametrize("spec,why", [
    ("shopapp", "MODULE:ATTRIBUTE"), ("no_such_module_xyz:registry", "cannot import"),
    ("shopapp:nothing", "has no attribute"), ("shopapp:SHOP_NAME", "not a vino Registry"),
])
def test_graft_check_registry_says_what_is_wrong_with_the_spec(
        spec: str, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "shopapp.py").write_text(SHOP_APP + "SHOP_NAME = 'shop'\n")
    (tmp_path / "discount.wat").write_text(DISCOUNT_WAT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["graft", "check", "discount.wat", "--point", "shop.discount",
                 "--registry", spec]) == 2
    assert why in capsys.readouterr().err


@pytest.mark.parametrize("ext,language", [(".c", "C"), (".zig", "Zig"), (".rs", "Rust"),
                                          (".ts", "AssemblyScript")])
def test_graft_check_of_a_source_file_says_how_to_build_it(
        ext: str, language: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / f"g{ext}"
    src.write_text("// a graft\n")
    assert main(["graft", "check", str(src), "--point", "fs.readahead"]) == 2
    err = capsys.readouterr().err
    assert f"is {language} source, not a WebAssembly module" in err
    assert f"vino graft build {src} -o {tmp_path / 'g.wasm'}" in err


def test_graft_build_picks_the_toolchain_by_extension(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for lang, ext in (("zig", ".zig"), ("wat", ".wat")):
        out = tmp_path / f"{lang}.wasm"
        src = SAMPLES_DIR / lang / f"readahead_stride{ext}"
        assert main(["graft", "build", str(src), "-o", str(out)]) == 0
        assert out.read_bytes() == (SAMPLES_DIR / lang / "readahead_stride.wasm").read_bytes()
    assert capsys.readouterr().out.count(" bytes") == 2


def test_graft_build_without_the_toolchain_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from vino.sdk import toolchains

    monkeypatch.setattr(toolchains, "_find_asc", lambda: None)
    src = tmp_path / "g.ts"
    src.write_text("export function f(): i32 { return 1; }\n")
    assert main(["graft", "build", str(src)]) == 1
    err = capsys.readouterr().err
    assert "no AssemblyScript toolchain: npm install --prefix" in err
    assert f"assemblyscript@{toolchains.ASSEMBLYSCRIPT_VERSION}" in err
    assert not (tmp_path / "g.wasm").exists()


def test_graft_toolchains_lists_every_language(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graft", "toolchains"]) == 0
    out = capsys.readouterr().out
    for language in ("C", "Zig", "Rust", "AssemblyScript", "WebAssembly text"):
        assert language in out


# ---- help and limits -------------------------------------------------------------------

def _subparsers(p: object) -> list[object]:
    import argparse

    assert isinstance(p, argparse.ArgumentParser)
    found: list[object] = [p]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _subparsers(sub)
    return found


def test_every_commands_help_describes_it_and_every_option() -> None:
    import argparse

    from vino.cli import parser

    for p in _subparsers(parser()):
        assert isinstance(p, argparse.ArgumentParser)
        assert p.description and len(p.description) > 30, p.prog
        for action in p._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help, f"{p.prog} {action.dest} has no help"
        p.format_help()  # renders without error


def test_demo_sqlite_states_its_minimum(capsys: pytest.CaptureFixture[str]) -> None:
    from vino.cli import MIN_SQLITE_ROWS

    assert main(["demo", "sqlite", "--rows", str(MIN_SQLITE_ROWS - 1)]) == 2
    assert f"--rows must be at least {MIN_SQLITE_ROWS}" in capsys.readouterr().err


def test_stats_reports_what_failed_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats"]) == 0
    out = capsys.readouterr().out
    assert "What failed and why" in out
    assert "readahead_out_of_range" in out and "removed for invalid_result" in out
    assert main(["stats", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["point"] for r in data["points"]} >= {"fs.readahead", "vm.evict"}
    assert "invalid_result" in data["report"]
