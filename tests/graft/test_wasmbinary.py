"""The one reader of the WebAssembly binary format: hostile bytes raise ``MalformedWasm``
(a ``ValueError``) saying what, never ``IndexError`` or a wrong answer."""

from __future__ import annotations

import pytest
import wasmtime

from vino.errors import MalformedWasm
from vino.graft import wasmbinary as wb

MODULE = bytes(wasmtime.wat2wasm('''
(module
  (import "vino" "log" (func $log (param i32 i32)))
  (import "env" "mem" (memory 1 2))
  (global $g (export "g") (mut i32) (i32.const 0))
  (func (export "f") (result i32) (local i64 i64) (local i32) i32.const 1))
'''))


def test_a_real_module_reads_as_its_sections_imports_exports_and_bodies() -> None:
    wb.check_header(MODULE)
    secs = list(wb.sections(MODULE))
    assert [s.id for s in secs if s.id != wb.CUSTOM] == [
        wb.TYPE, wb.IMPORT, wb.FUNCTION, wb.GLOBAL, wb.EXPORT, wb.CODE]
    assert secs[-1].end == len(MODULE)  # the last, the names, ends the module
    imp = next(s for s in secs if s.id == wb.IMPORT)
    assert list(wb.imports(MODULE, imp)) == [wb.Import("vino", "log", wb.KIND_FUNCTION),
                                             wb.Import("env", "mem", wb.KIND_MEMORY)]
    exp = next(s for s in secs if s.id == wb.EXPORT)
    assert [kind for _, _, kind in wb.exports(MODULE, exp)] == [wb.KIND_GLOBAL,
                                                                wb.KIND_FUNCTION]
    code = next(s for s in secs if s.id == wb.CODE)
    [(start, end)] = wb.function_bodies(MODULE, code)
    nlocals, first = wb.locals_of(MODULE, start)
    assert nlocals == 3 and MODULE[first] == 0x41 and end == code.end  # i32.const


@pytest.mark.parametrize("value", [0, 1, 127, 128, 624485, 2**32 - 1])
def test_u32_round_trips_through_leb128(value: int) -> None:
    data = wb.encode_u32(value)
    assert wb.read_u32(data, 0) == (value, len(data))
    assert wb.skip_leb(data, 0) == len(data)


@pytest.mark.parametrize(("data", "what"), [
    (b"\x80\x80", "truncated"),  # continuation bits to the end
    (b"\x80\x80\x80\x80\x80\x01", "overlong"),  # six bytes: no u32
])
def test_a_truncated_or_overlong_number_is_refused(data: bytes, what: str) -> None:
    with pytest.raises(MalformedWasm, match=what):
        wb.read_u32(data, 0)


def test_a_section_claiming_more_bytes_than_the_module_has_is_refused() -> None:
    bad = MODULE[:8] + bytes([wb.CUSTOM]) + wb.encode_u32(1000)
    with pytest.raises(MalformedWasm, match="runs past the end"):
        list(wb.sections(bad))
    # the fuzzer's lenient walk yields it, last, instead
    assert [(s.id, s.end) for s in wb.sections(bad, strict=False)] == [(0, 8 + 3 + 1000)]


def test_a_name_running_past_the_end_is_refused_not_sliced_short() -> None:
    with pytest.raises(MalformedWasm, match="name runs past"):
        wb.read_name(b"\x05ab", 0)


@pytest.mark.parametrize("header", [b"", b"\0asm", b"\0asm\x02\0\0\0", b"\0wasm\x01\0\0"])
def test_anything_but_a_version_1_header_is_refused(header: bytes) -> None:
    with pytest.raises(MalformedWasm):
        wb.check_header(header)


def test_an_import_of_unknown_kind_is_refused() -> None:
    body = wb.encode_u32(1) + b"\x01m\x01n\x07"
    data = MODULE[:8] + bytes([wb.IMPORT]) + wb.encode_u32(len(body)) + body
    sec = next(wb.sections(data))
    with pytest.raises(MalformedWasm, match="unknown import kind 7"):
        list(wb.imports(data, sec))


ELEMENTS = bytes(wasmtime.wat2wasm('''
(module
  (table $t 8 funcref) (table $u 8 funcref)
  (global $base i32 (i32.const 1))
  (func $f)
  (elem (i32.const 0) $f $f)                                      ;; flags 0
  (elem func $f $f $f)                                            ;; flags 1
  (elem (table $u) (global.get $base) func $f)                    ;; flags 2
  (elem declare func $f)                                          ;; flags 3
  (elem (i32.const 2) funcref (ref.func $f) (ref.null func))      ;; flags 4
  (elem funcref (ref.null func) (ref.func $f) (ref.func $f))      ;; flags 5
  (elem (table $u) (i32.add (i32.const 1) (i32.const 3)) funcref (ref.null func))  ;; 6
  (elem declare funcref (ref.func $f) (ref.func $f)))             ;; flags 7
'''))


def test_every_element_segment_encoding_is_counted() -> None:
    # The eight segments above are encoded with flags 0 to 7, in order (as wat2wasm
    # writes them): indices or expressions; active, passive or declared; table 0 or not.
    sec = next(s for s in wb.sections(ELEMENTS) if s.id == wb.ELEMENT)
    assert list(wb.element_counts(ELEMENTS, sec)) == [2, 3, 1, 1, 2, 3, 1, 2]


def test_an_element_segment_with_an_unknown_instruction_or_cut_short_is_malformed() -> None:
    sec = next(s for s in wb.sections(ELEMENTS) if s.id == wb.ELEMENT)
    body = ELEMENTS[:sec.end]
    first = wb.read_u32(body, sec.body)[1]  # flags 0, then i32.const 0
    hostile = body[:first + 1] + b"\x01" + body[first + 2:]  # nop in the offset
    with pytest.raises(MalformedWasm, match="constant expression"):
        list(wb.element_counts(hostile, sec))
    with pytest.raises(MalformedWasm):
        list(wb.element_counts(body[:sec.end - 3], sec))
