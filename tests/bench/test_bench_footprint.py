"""The footprint benchmark's reading of callgrind dumps (the run itself needs valgrind and
minutes of simulation: not in the default run)."""

from __future__ import annotations

import pytest

from vino.bench import footprint

# A dump as callgrind writes one: compressed names, a call's inclusive cost (skipped: its
# callee's own lines count it), relative positions.
DUMP = """version: 1
creator: callgrind-3.19.0
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
10 100 30 10 40 4 2 1 3 1
+2 50 10 5 6 2 1 1 1 0
cob=(2) /root/.cache/vino/fastpath-0123.so
cfi=(2) fastpath.c
cfn=(2) protected_vectorcall
calls=1 0
* 999 999 999 999 999 999 999 999 999
ob=(2)
fl=(2)
fn=(2)
5 20 5 5 7 3 0 1 2 1
ob=(3) ???
fl=(3) ???
fn=(3) 0x000000000a2802a0
0 9 1 1 2 1 0 0 0 0
ob=(4) /usr/lib/python3.11/lib-dynload/_struct.cpython-311-x86_64-linux-gnu.so
fl=(4) _struct.c
fn=(4) s_pack_internal
1 8 2 0 1 1 0 1 0 0
ob=(1)
fl=(1)
fn=(1)
12 4 1 1 1 0 0 0 0 0
totals: 191 49 22 57 11 3 4 6 2
"""


def test_a_dump_is_summed_by_part_without_counting_a_call_twice() -> None:
    parts = footprint.by_part(footprint.parse(DUMP), calls=2)
    # CPython: ceval's three cost lines and _struct's; I1mr 40+6+1+1, D1mr+D1mw 6+3+1+0,
    # ILmr 1+1+0+1, DLmr+DLmw 4+1+0+0, Ir 100+50+8+4; per call of two.
    assert parts["CPython"] == {"code_lines": 24.0, "data_lines": 5.0, "code_pages": 1.5,
                                "data_pages": 2.5, "instructions": 81.0}
    assert parts["vino native"]["code_lines"] == 7 / 2  # not the 999 of the call's line
    assert parts["guest"]["code_lines"] == 2 / 2
    assert parts["wasmtime"]["code_lines"] == 0
    assert sum(p["code_lines"] for p in parts.values()) == 57 / 2  # the dump's I1mr total


def test_a_window_is_counted_less_the_empty_one_and_rendered_with_its_parts() -> None:
    one = footprint.by_part(footprint.parse(DUMP), calls=1)
    empty = footprint.by_part(footprint.parse(DUMP), calls=2)
    r = footprint.summarise({"empty": empty, "floor": one, "native_floor": one, "sched": one},
                            calls=1)
    assert r["windows"]["sched"]["total"]["code_lines"] == 57 - 57 / 2
    assert r["windows"]["native_floor"]["total"]["instructions"] == 191 - 191 / 2
    assert r["windows"]["sched"]["parts"]["vino native"]["code_lines"] == 7 - 7 / 2
    text = footprint.render(r)
    assert "floor (ctypes call of labs)" in text and "scheduling" in text
    assert "native floor (C-extension call of a Wasm export)" in text
    assert "vino native: code / data lines" in text


@pytest.mark.parametrize(("obj", "part"), [
    ("/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", "CPython"),
    ("/x/lib-dynload/_ctypes.cpython-311-x86_64-linux-gnu.so", "CPython"),
    ("/root/.cache/vino/stack-7aff05d2f0f2af42.so", "vino native"),
    ("/v/site-packages/wasmtime/linux-x86_64/_libwasmtime.so", "wasmtime"),
    ("???", "guest"), ("/usr/lib/x86_64-linux-gnu/libc.so.6", "rest")])
def test_each_object_file_belongs_to_one_part(obj: str, part: str) -> None:
    assert footprint.part_of(obj) == part
