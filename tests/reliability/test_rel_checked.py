"""The native C's checkers themselves: the leak count (``vino.testing.leaks``) sees a
reference kept on every call and nothing else, and the memcheck run
(``vino.testing.checked``) counts the errors of vino's C, not CPython's or wasmtime's."""

from __future__ import annotations

from vino.testing.checked import ours
from vino.testing.leaks import blocks_kept


def test_a_reference_kept_on_every_call_is_counted_and_a_clean_loop_is_not() -> None:
    kept: list[object] = []
    assert blocks_kept(lambda: kept.append((len(kept), "x")), 2_000) >= 2_000
    assert blocks_kept(lambda: (len(kept), "x"), 2_000) < 100


LOG = """==7== Memcheck, a memory error detector
==7== Command: python -m pytest
==7==
==7== Use of uninitialised value of size 8
==7==    at 0x49E0569: Py_INCREF (object.h:502)
==7==    by 0x49E0569: get_small_int (longobject.c:62)
==7==
==7== Conditional jump or move depends on uninitialised value(s)
==7==    at 0xA126225: <wasmparser::parser::Parser>::parse (in /x/_libwasmtime.so)
==7==
==7== Invalid read of size 8
==7==    at 0x4B1: encode_rows (fastpath.c:1131)
==7==    by 0x4B2: protected_vectorcall (fastpath.c:1490)
==7==
==7== Invalid write of size 4
==7==    at 0x5C1: hit_locked (in /root/.cache/vino/plainread-64dbd621253a2baa.so)
==7==
==7== Invalid read of size 4
==7==    at 0xD7C419C: ???
==7==    by 0xA5F778A: wasmtime_func_call_unchecked (in /x/_libwasmtime.so)
==7==    by 0xB0E0491: protected_vectorcall (fastpath.c:1574)
==7==
==7== Invalid read of size 8
==7==    at 0x4C3: memmove (vg_replace_strmem.c:1382)
==7==    by 0x4B1: encode_bytes (fastpath.c:1251)
==7==
==7== Use of uninitialised value of size 8
==7==    at 0x49E0569: Py_INCREF (object.h:502)
==7==    by 0x49E0569: get_small_int (longobject.c:62)
==7==    by 0xB0E0491: decode_native (fastpath.c:1374)
==7==
==7== ERROR SUMMARY: 7 errors from 7 contexts (suppressed: 0 from 0)
"""


def test_memcheck_counts_the_errors_with_a_frame_in_vinos_native_c_only() -> None:
    found = ours(LOG)
    assert [r.splitlines()[1].split(": ")[1] for r in found] == [
        "encode_rows (fastpath.c:1131)",
        "hit_locked (in /root/.cache/vino/plainread-64dbd621253a2baa.so)",
        "memmove (vg_replace_strmem.c:1382)"]  # not the guard page, not CPython's ints
