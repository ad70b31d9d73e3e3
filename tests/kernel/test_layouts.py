"""The kernel points' layouts (vino.kernel.layouts) against every other spelling of them.

A layout is declared once; the encoders in ``vino.kernel.points`` and
``vino.kernel.sched`` take their structs and offsets from it. These tests hold the
encoders' bytes, the C header ``vino.h`` and docs/ABI.md to it, so a field moved in
one place and not the others fails here instead of in a graft.
"""

from __future__ import annotations

import re
import struct
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vino.graft import FunctionPoint
from vino.graft.layout import KINDS, Field, Layout, Struct
from vino.kernel import layouts, params, sched
from vino.kernel.cache import PageInfo
from vino.kernel.kernel import Kernel
from vino.kernel.sched import ThreadInfo
from vino.pygraft import shim

VINO_H = Path(layouts.__file__).resolve().parent.parent / "sdk" / "vino.h"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    k = Kernel.boot(tmp_path_factory.mktemp("layouts") / "k.img", nblocks=256)
    yield k
    k.shutdown()


def _header_structs() -> dict[str, dict[str, int]]:
    """struct name -> field -> offset, from vino.h's VINO_CHECK_OFFSET lines; sizes too."""
    text = VINO_H.read_text()
    out: dict[str, dict[str, int]] = {}
    for name, fld, off in re.findall(r"VINO_CHECK_OFFSET\((\w+), (\w+), (\d+)\)", text):
        out.setdefault(name, {})[fld] = int(off)
    for name, size in re.findall(r"sizeof\((\w+)\) == (\d+)\b", text):
        out.setdefault(name, {})["sizeof"] = int(size)
    return out


def _defines() -> dict[str, int]:
    text = VINO_H.read_text()
    return {m[0]: int(m[1]) for m in re.findall(r"#define (VINO_\w+) (\d+)u?\b", text)}


def _structs(lay: Layout) -> list[Struct]:
    found = [lay.fields]
    found += [f.elem for f in lay.fields.fields if isinstance(f.elem, Struct)]
    return found


@pytest.mark.parametrize("point", sorted(layouts.LAYOUTS))
def test_layout_agrees_with_vino_h_offsets_and_sizes(point: str) -> None:
    header = _header_structs()
    for st in _structs(layouts.LAYOUTS[point]):
        assert st.name in header, f"vino.h has no checked struct {st.name}"
        declared = header[st.name]
        for f in st.fields:
            if f.name in declared:
                assert declared[f.name] == f.offset, f"{st.name}.{f.name}"
        checked = {f.name for f in st.fields if f.name in declared}
        assert checked >= {f.name for f in st.fields if not f.pad}, st.name
        if "sizeof" in declared:
            assert declared["sizeof"] == st.size, st.name


def test_layout_counts_and_buffers_agree_with_vino_h() -> None:
    d = _defines()
    assert d["VINO_RA_BUFFER"] == layouts.READAHEAD.buffer_size
    assert d["VINO_RA_HIST"] == layouts.READAHEAD.field("hist").count
    assert d["VINO_RA_MAX_OUT"] == layouts.READAHEAD.field("out").count
    assert d["VINO_EVICT_MAX"] == layouts.EVICT.field("cand").count
    assert d["VINO_SCHED_MAX"] == layouts.PICK.field("thread").count
    assert d["VINO_FILTER_MAX"] == layouts.FILTER.field("data").count
    assert d["VINO_ACCESS_BUFFER"] == layouts.ACCESS.buffer_size


def test_layout_agrees_with_the_points_declared_by_the_kernel(kernel: Kernel) -> None:
    for name, lay in layouts.LAYOUTS.items():
        pt = kernel.points[name]
        assert pt.entry == lay.entry and pt.kind == lay.kind
        assert pt.buffer_size == lay.buffer_size
        assert pt.params == tuple(a.wasm for a in lay.args)
        assert {c.name: (c.params, c.results) for c in pt.callables} == lay.callables


@pytest.mark.parametrize("point", sorted(layouts.LAYOUTS))
def test_an_encoders_structs_cover_exactly_the_layouts_bytes(point: str) -> None:
    lay = layouts.LAYOUTS[point]
    arrays = [f for f in lay.fields.fields if f.count is not None]
    for f in arrays:
        assert lay.elements(f.name, 1).size == f.elem_size
        assert lay.rows(f.name, 0).size == f.offset
        assert lay.rows(f.name, 2).size == f.offset + 2 * f.elem_size
        with pytest.raises(ValueError):
            lay.rows(f.name, (f.count or 0) + 1)
    last = arrays[-1] if arrays else None
    if last is not None and last.end == lay.fields.size:
        whole = lay.rows(last.name, last.count or 0)  # header and every row: the record
        record = lay.fields.struct()
        data = bytes(i * 7 % 251 for i in range(record.size))
        assert whole.size == record.size and whole.unpack(data) == record.unpack(data)


def _decoded(lay: Layout, buf: bytes | bytearray, **args: int) -> dict[str, Any]:
    return shim.fields_of(lay, buf, args)


def test_evict_encoder_writes_what_the_layout_reads(kernel: Kernel) -> None:
    pt = kernel.points["vm.evict"]
    cands = [PageInfo(page_id=7 + i, vpn=(1 << 32) - 1 - i, flags=i % 4, last_use=(1 << 60) + i)
             for i in range(5)]
    buf = bytearray(pt.buffer_size)
    pt.encode(memoryview(buf), None, cands)
    rows = _decoded(layouts.EVICT, buf)["cand"]
    assert isinstance(rows, list) and len(rows) == 5
    for r, c in zip(rows, cands, strict=True):
        assert (r.page_id, r.vpn, r.flags, r.last_use) == (c.page_id, c.vpn, c.flags, c.last_use)


def test_pick_encoder_and_sched_pack_write_what_the_layout_reads(kernel: Kernel) -> None:
    pt = kernel.points["sched.pick"]
    rows = [ThreadInfo(tid=3 + i, priority=-5 + i, cpu_ns=(1 << 40) + i, waited_ns=99 * i,
                       flags=i & 1) for i in range(4)]
    buf = bytearray(pt.buffer_size)
    pt.encode(memoryview(buf), None, rows)
    for data in (buf, sched.pack_threads(rows)):
        got = _decoded(layouts.PICK, data)["thread"]
        assert isinstance(got, list)
        assert [(t.tid, t.priority, t.cpu_ns, t.waited_ns, t.flags) for t in got] == [
            (r.tid, r.priority, r.cpu_ns, r.waited_ns, r.flags) for r in rows]


def test_readahead_encoder_and_decoder_use_the_layouts_offsets(kernel: Kernel) -> None:
    pt = kernel.points["fs.readahead"]
    assert isinstance(pt, FunctionPoint)
    hist = [40, 39, 38, 37]
    of = SimpleNamespace(inode=SimpleNamespace(size=100 * params.BLOCK_SIZE),
                         _history=deque(hist, maxlen=params.READAHEAD_HISTORY))
    buf = bytearray(pt.buffer_size)
    pt.encode(memoryview(buf), of, 41)
    f = _decoded(layouts.READAHEAD, buf)
    assert (f["file_blocks"], f["block"], f["n_hist"], f["hist"]) == (100, 41, 4, hist)
    assert f["max_out"] == min(kernel.fs.readahead_max, params.READAHEAD_MAX_OUT_LIMIT)
    out: Field = layouts.READAHEAD.field("out")
    struct.pack_into("<3I", buf, out.offset, 42, 43, 44)
    assert pt.decode(memoryview(buf), 3, of, 41) == [42, 43, 44]


def test_filter_and_access_encoders_use_the_layouts_offsets(kernel: Kernel) -> None:
    pt = kernel.points["fs.filter"]
    inode = SimpleNamespace(inum=12)
    buf = bytearray(pt.buffer_size)
    args = pt.encode(memoryview(buf), inode, 128, b"abc", 1)
    assert args == (1, 3)
    f = _decoded(layouts.FILTER, buf, direction=1, length=3)
    assert (f["file_offset"], f["len"], f["file_id"], bytes(f["data"])) == (128, 3, 12, b"abc")
    ev = kernel.points["fs.access"]
    buf = bytearray(ev.buffer_size)
    ev.encode(memoryview(buf), inode, 9, 1, 1234)
    a = _decoded(layouts.ACCESS, buf)
    assert (a["file_id"], a["block"], a["op"], a["time_ns"]) == (12, 9, 1, 1234)


# ---- docs/ABI.md ---------------------------------------------------------------------------

ABI_MD = Path(layouts.__file__).resolve().parents[3] / "docs" / "ABI.md"
_DECL = re.compile(r"(u8|u32|i32|u64) (\w+)(?:\[(\d+)\])?")


def _abi_sections() -> dict[str, str]:
    """point -> its section of ABI.md's reference kernel points."""
    text = ABI_MD.read_text()
    parts = re.split(r"^### `([\w.]+)`.*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


Row = tuple[int, str, str, int | None]  # offset, kind, name, count


def _documented(section: str) -> tuple[int, list[int], list[Row]]:
    """(buffer size, row sizes, [(offset, kind, name, count)]) as a section's table writes
    them; a row array (``8 + 24·i``) is its element's fields at the first row's offsets."""
    size = re.search(r"Buffer \(`VINO_\w+` = ([\d +\u00d7]+) bytes\)", section)
    assert size is not None, "no buffer size"
    total = sum(int(a) * int(b or 1) for a, b in
                re.findall(r"(\d+)(?: \u00d7 (\d+))?", size[1]))
    rows: list[Row] = []
    steps: list[int] = []
    for off, step, decls in re.findall(r"^\| (\d+)(?: \+ (\d+)·i)? \| `([^`]+)`", section, re.M):
        at = int(off)
        steps += [int(step)] if step else []
        for kind, name, count in _DECL.findall(decls):
            rows.append((at, kind, name, int(count) if count else None))
            at += KINDS[kind].size * (int(count) if count else 1) if step else 0
    return total, steps, rows


def _declared(lay: Layout) -> list[Row]:
    rows: list[Row] = []
    for f in lay.fields.fields:
        if isinstance(f.elem, Struct):  # a row array: its element's fields, first row
            rows += [(f.offset + e.offset, e.elem.name, e.name, e.count) for e in f.elem.fields
                     if not isinstance(e.elem, Struct)]
        else:
            rows.append((f.offset, f.elem.name, f.name, f.count))
    return rows


@pytest.mark.parametrize("point", sorted(layouts.LAYOUTS))
def test_abi_md_documents_each_layouts_offsets_types_and_sizes(point: str) -> None:
    lay = layouts.LAYOUTS[point]
    section = _abi_sections()[point]
    size, steps, rows = _documented(section)
    assert size == lay.buffer_size
    assert steps == [f.elem.size for f in lay.fields.fields if isinstance(f.elem, Struct)]
    assert rows == _declared(lay)
    args = ", ".join(f"{a.name}: {a.wasm}" for a in lay.args)
    assert f"`{lay.entry}({args}) -> i32`" in section


# ---- vino.h's struct declarations ------------------------------------------------------------

_C_KINDS = {"uint8_t": "u8", "uint32_t": "u32", "int32_t": "i32", "uint64_t": "u64"}


def _header_declarations() -> dict[str, list[tuple[int, str, str, int | None]]]:
    """struct name -> [(offset, kind or struct name, field, count)] as vino.h declares
    them (packed: each field starts where the one before it ends)."""
    text = VINO_H.read_text()
    defines = _defines()
    sizes: dict[str, int] = {}
    out: dict[str, list[tuple[int, str, str, int | None]]] = {}
    for name, body in re.findall(r"typedef struct VINO_PACKED (\w+) \{(.*?)\} \1;", text, re.S):
        at, fields = 0, []
        for ctype, fld, count in re.findall(r"^\s*(\w+) (\w+)(?:\[(\w+)\])?;", body, re.M):
            n = None if not count else defines.get(count, int(count) if count.isdigit() else -1)
            kind = _C_KINDS.get(ctype, ctype)
            fields.append((at, kind, fld, n))
            at += (KINDS[kind].size if kind in KINDS else sizes[kind]) * (n or 1)
        sizes[name] = at
        out[name] = fields
    return out


@pytest.mark.parametrize("point", sorted(layouts.LAYOUTS))
def test_vino_h_declares_each_layouts_structs_field_by_field(point: str) -> None:
    declared = _header_declarations()
    for st in _structs(layouts.LAYOUTS[point]):
        assert st.name in declared, f"vino.h declares no struct {st.name}"
        assert declared[st.name] == [
            (f.offset, f.elem.name, f.name, f.count) for f in st.fields], st.name


def test_a_thread_row_is_its_layout_values_in_order_and_a_candidate_its_packed_row() -> None:
    """The sched.pick encoder packs ThreadInfo tuples as they are, and vm.evict's copies each
    PageInfo's row: both must be the layouts' rows, field for field."""
    assert ThreadInfo._fields == tuple(f.name for f in layouts.THREAD.fields if not f.pad)
    c = PageInfo(page_id=9, vpn=(1 << 32) - 1, flags=3, last_use=(1 << 64) - 1)
    buf = bytearray(layouts.EVICT.buffer_size)
    head = layouts.EVICT.rows("cand", 0)
    head.pack_into(buf, 0, *([1] + [0] * (len(head.unpack_from(buf)) - 1)))  # n = 1
    at = layouts.EVICT.field("cand").offset
    buf[at:at + len(c.row)] = c.row
    record = _decoded(layouts.EVICT, buf)["cand"]
    assert isinstance(record, list)
    assert (record[0].page_id, record[0].vpn, record[0].flags, record[0].last_use) == (
        c.page_id, c.vpn, c.flags, c.last_use)
