"""``vino bench install``: its modules are what they claim, and the refused one is refused
before compiling (the full run is a benchmark, not a test)."""

from __future__ import annotations

import wasmtime

from vino import limits
from vino.bench import install
from vino.graft.loader import scan_sections


def test_the_worst_case_modules_sit_exactly_at_the_loader_limits() -> None:
    for shape in ("15 bodies of 64 KiB (1 MiB)", "4094 functions x 1024 locals"):
        wasm = install.SHAPES[shape]()
        sec = scan_sections(wasm)
        assert len(wasm) <= limits.MAX_MODULE_BYTES
        assert sec.largest_body <= limits.MAX_FUNCTION_BODY_BYTES
        assert sec.most_locals <= limits.MAX_LOCALS_PER_FUNCTION
        assert sec.counts[3] <= limits.MAX_FUNCTIONS
        wasmtime.Module.validate(wasmtime.Engine(), wasm)
    sec = scan_sections(install.SHAPES["15 bodies of 64 KiB (1 MiB)"]())
    assert sec.largest_body > limits.MAX_FUNCTION_BODY_BYTES - 64
    assert scan_sections(install.SHAPES["4094 functions x 1024 locals"]()).most_locals == \
        limits.MAX_LOCALS_PER_FUNCTION


def test_the_module_that_used_to_cost_seconds_is_refused_by_the_scan() -> None:
    got = install.measure_here(install.REFUSED, "cranelift")
    assert got["outcome"].startswith("refused: module has 60002 functions")
    row = {"rows": {install.REFUSED: {"cranelift": got}}}
    assert "(refused)" in install.render(row)
