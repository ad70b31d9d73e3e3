"""The Python samples against their C twins and against themselves run as plain Python.

For each sample, hypothesis generates a sequence of messages and calls with the
point's buffer filled as the host fills it (counts past their arrays included),
and the same sequence runs three ways: the C sample's module, the compiled Python
sample, and the Python source as plain Python. Answers and buffers must agree at
every step. The demo workloads then run with the C and the Python grafts and must
give the same results.
"""

from __future__ import annotations

import hashlib
import struct
import types
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vino import workloads
from vino.graft.layout import Layout
from vino.kernel.device import SSD
from vino.kernel.layouts import EVICT, FILTER, PICK, READAHEAD
from vino.pygraft import compile_source, shim
from vino.sdk.build import sample_path

from .rig import TRAP, Rig

# The kernel buffers as the layouts lay them out (pads are "x" bytes: no value).
RA_INPUTS = READAHEAD.rows("hist", 16)  # file_blocks, block, max_out, n_hist, hist[16]
CAND, CAND_AT = EVICT.elements("cand", 1), EVICT.field("cand").offset
THREAD, THREAD_AT = PICK.elements("thread", 1), PICK.field("thread").offset
FILTER_HEADER, DATA_AT = FILTER.rows("data", 0), FILTER.field("data").offset

Step = tuple[str, Any]  # ("msg", bytes) or ("call", (buffer, args))


def _load(name: str, layout: Layout) -> tuple[bytes, Any, str]:
    src = sample_path(f"{name}.py").read_text()
    return sample_path(f"{name}.wasm").read_bytes(), compile_source(src, layout), src


def run_three_ways(name: str, layout: Layout, steps: list[Step],
                   default: int | None = None) -> None:
    """``default``: what default() answers (the built-in policy is not run here)."""
    c_wasm, compiled, src = _load(name, layout)
    hosts = [shim.Host(default=None if default is None else lambda fields: default)
             for _ in range(3)]
    c, py = Rig(c_wasm, layout, hosts[0]), Rig(compiled, layout, hosts[1])
    mod: types.ModuleType = shim.load(src)
    for kind, what in steps:
        if kind == "msg":
            want = shim.message(mod, what)
            assert c.message(what) == py.message(what) == want, (kind, what)
            continue
        buf, args = what
        rc, cbuf = c.call(buf, args)
        rp, pbuf = py.call(buf, args)
        plain_buf = bytearray(buf)
        rs = shim.run(mod, layout, plain_buf, args, hosts[2])
        assert rc is not TRAP and rp is not TRAP
        assert rc == rp == rs, (rc, rp, rs)
        assert cbuf == pbuf == bytes(plain_buf)


def _u32s(n: int, lo: int = 0, hi: int = 2**32 - 1) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(lo, hi), min_size=n, max_size=n)


@st.composite
def ra_call(draw: st.DrawFn) -> Step:
    file_blocks = draw(st.integers(0, 400))
    last = max(file_blocks - 1, 0)  # near either end of the file, where strides stop
    block = draw(st.one_of(st.integers(0, min(5, last)), st.integers(max(last - 5, 0), last),
                           st.integers(0, last)))
    stride = draw(st.integers(-9, 9))
    n_hist = draw(st.integers(0, 20))
    if draw(st.booleans()):  # a pattern, possibly repeating block
        start = 1 if draw(st.booleans()) else 0
        hist = [max(0, block - stride * (i + 1 - start)) % 2**32 for i in range(16)]
    else:
        hist = draw(_u32s(16, 0, 500))
    buf = bytearray(READAHEAD.buffer_size)
    RA_INPUTS.pack_into(buf, 0, file_blocks, block, draw(st.integers(0, 40)), n_hist, *hist)
    return ("call", (buf, ()))


ra_msg = st.one_of(st.integers(0, 7).map(lambda s: ("msg", struct.pack("<I", s))),
                   st.binary(max_size=6).map(lambda b: ("msg", b)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(ra_call(), ra_msg), min_size=1, max_size=8))
def test_readahead_stride_python_equals_c_and_plain_python(steps: list[Step]) -> None:
    run_three_ways("readahead_stride", READAHEAD, steps)


@st.composite
def evict_call(draw: st.DrawFn) -> Step:
    n = draw(st.integers(0, 40))
    buf = bytearray(EVICT.buffer_size)
    EVICT.rows("cand", 0).pack_into(buf, 0, n if draw(st.integers(0, 9)) else 300)
    for i in range(min(n, 256)):
        CAND.pack_into(buf, CAND_AT + CAND.size * i, i, draw(st.integers(0, 30)),
                       draw(st.integers(0, 3)), draw(st.integers(0, 60)))
    return ("call", (buf, ()))


def _keep_msg(op: int, vpns: list[int]) -> Step:
    return ("msg", struct.pack(f"<{2 + len(vpns)}I", op, len(vpns), *vpns))


evict_msg = st.one_of(
    st.lists(st.integers(0, 30), max_size=12).map(
        lambda v: ("msg", struct.pack(f"<{1 + len(v)}I", len(v), *v))),
    st.binary(max_size=12).map(lambda b: ("msg", b)))

sqlite_msg = st.one_of(
    st.lists(st.integers(0, 30), max_size=12, unique=True).map(
        lambda v: _keep_msg(1, sorted(v))),
    st.lists(st.integers(0, 30), max_size=6).map(lambda v: _keep_msg(1, v)),
    st.integers(0, 2).map(lambda m: ("msg", struct.pack("<2I", 2, m))),
    st.binary(max_size=12).map(lambda b: ("msg", b)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(evict_call(), evict_msg), min_size=1, max_size=8))
def test_evict_keep_python_equals_c_and_plain_python(steps: list[Step]) -> None:
    run_three_ways("evict_keep", EVICT, steps)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(evict_call(), sqlite_msg), min_size=1, max_size=10))
def test_sqlite_evict_python_equals_c_and_plain_python(steps: list[Step]) -> None:
    run_three_ways("sqlite_evict", EVICT, steps)


@st.composite
def pick_call(draw: st.DrawFn) -> Step:
    n = draw(st.integers(0, 70))
    buf = bytearray(PICK.buffer_size)
    PICK.rows("thread", 0).pack_into(buf, 0, n)
    for i in range(min(n, 64)):
        THREAD.pack_into(buf, THREAD_AT + THREAD.size * i, i, draw(st.integers(-5, 5)),
                         draw(st.integers(0, 10**6)), draw(st.integers(0, 40)),
                         draw(st.integers(0, 3)))
    return ("call", (buf, ()))


@settings(max_examples=40, deadline=None)
@given(st.lists(pick_call(), min_size=1, max_size=4))
def test_sched_interactive_python_equals_c_and_plain_python(steps: list[Step]) -> None:
    run_three_ways("sched_interactive", PICK, steps)


@st.composite
def filter_call(draw: st.DrawFn) -> Step:
    n = draw(st.integers(0, 160))
    off = draw(st.one_of(st.integers(0, 10**6), st.integers(0, 2**38)))
    buf = bytearray(FILTER.buffer_size)
    FILTER_HEADER.pack_into(buf, 0, off, n, 5)
    buf[DATA_AT:DATA_AT + n] = draw(st.binary(min_size=n, max_size=n))
    return ("call", (buf, (draw(st.integers(-1, 2)), n)))


filter_msg = st.one_of(st.binary(min_size=44, max_size=44).map(lambda b: ("msg", b)),
                       st.binary(max_size=50).map(lambda b: ("msg", b)))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(filter_call(), filter_msg), min_size=1, max_size=5))
def test_chacha20_filter_python_equals_c_and_plain_python(steps: list[Step]) -> None:
    run_three_ways("chacha20_filter", FILTER, steps)


def test_chacha20_python_on_a_whole_block_equals_c() -> None:
    key = hashlib.sha256(b"k").digest() + bytes(12)
    data = hashlib.sha256(b"d").digest() * 128
    buf = bytearray(FILTER.buffer_size)
    FILTER_HEADER.pack_into(buf, 0, 64 * 7, len(data), 1)
    buf[DATA_AT:] = data
    run_three_ways("chacha20_filter", FILTER, [("msg", key), ("call", (buf, (0, len(data))))])


def test_demo_workloads_give_the_same_results_with_python_and_c_grafts(tmp_path: Path) -> None:
    keys = ("requests", "device_ms", "intact", "graft_calls", "graft_aborts")
    c = workloads.readahead_scan(tmp_path, SSD, graft=True, nblocks=64)
    p = workloads.readahead_scan(tmp_path, SSD, graft=True, nblocks=64,
                            module=workloads.sample("readahead_stride", python=True))
    assert {k: c[k] for k in keys} == {k: p[k] for k in keys} and p["graft_calls"] > 0
    c = workloads.eviction_run(tmp_path, graft=True, rounds=4)
    p = workloads.eviction_run(tmp_path, graft=True, rounds=4,
                          module=workloads.sample("evict_keep", python=True))
    assert c == p and p["graft_calls"] > 0
    c = workloads.encryption_run(tmp_path)
    p = workloads.encryption_run(tmp_path, module=workloads.sample("chacha20_filter", python=True))
    assert c == p and all(p[k] for k in ("roundtrip", "ciphertext_matches", "remount_with_key"))


def test_readahead_backward_stride_stops_at_block_zero() -> None:
    """A local first assigned a u32 field is an int: it may go negative, as in Python."""
    buf = bytearray(READAHEAD.buffer_size)
    RA_INPUTS.pack_into(buf, 0, 100, 2, 8, 16, *[2 + 3 * i for i in range(16)])
    run_three_ways("readahead_stride", READAHEAD, [("call", (buf, ()))])


@st.composite
def chain_msg(draw: st.DrawFn) -> Step:
    blocks = draw(st.lists(st.integers(0, 70), min_size=2, max_size=20, unique=True))
    if draw(st.integers(0, 9)) == 0:
        blocks.append(5000)  # past MAX_BLOCKS: ignored
    return ("msg", struct.pack(f"<{2 + len(blocks)}I", 1, len(blocks), *blocks))


sqlite_ra_msg = st.one_of(
    chain_msg(), chain_msg(),
    st.just(("msg", struct.pack("<I", 0))),
    st.tuples(st.sampled_from([2, 3]), st.integers(0, 40)).map(
        lambda t: ("msg", struct.pack("<2I", *t))),
    st.binary(max_size=9).map(lambda b: ("msg", b)))


@st.composite
def sqlite_ra_call(draw: st.DrawFn) -> Step:
    block = draw(st.integers(0, 70))
    prev = draw(st.integers(0, 70))
    n_hist = draw(st.integers(0, 18))
    hist = [block if draw(st.booleans()) else prev, prev, *draw(_u32s(14, 0, 70))]
    buf = bytearray(READAHEAD.buffer_size)
    RA_INPUTS.pack_into(buf, 0, draw(st.integers(0, 90)), block, draw(st.integers(0, 40)),
                        n_hist, *hist)
    return ("call", (buf, ()))


@st.composite
def sqlite_scan(draw: st.DrawFn) -> list[Step]:
    """A chain, then a scan along it (sometimes skipping a leaf), as SQLite reads it."""
    chain = draw(st.lists(st.integers(0, 90), min_size=3, max_size=40, unique=True))
    steps: list[Step] = [("msg", struct.pack(f"<{2 + len(chain[:62])}I", 1, len(chain[:62]),
                                             *chain[:62]))]
    file_blocks = draw(st.integers(50, 100))
    max_out = draw(st.integers(0, 40))
    for i in range(draw(st.integers(1, len(chain)))):
        if draw(st.integers(0, 6)) == 0:
            continue
        hist = [chain[j] for j in range(i, max(i - 16, -1), -1)]
        buf = bytearray(READAHEAD.buffer_size)
        READAHEAD.rows("hist", len(hist)).pack_into(buf, 0, file_blocks, chain[i], max_out,
                                                    len(hist), *hist)
        steps.append(("call", (buf, ())))
    return steps


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(sqlite_ra_msg, sqlite_ra_call(), sqlite_scan().map(
    lambda steps: ("scan", steps))), min_size=2, max_size=8))
def test_sqlite_readahead_python_equals_c_and_plain_python(steps: list[Step]) -> None:
    flat: list[Step] = []
    for kind, what in steps:
        flat += what if kind == "scan" else [(kind, what)]
    run_three_ways("sqlite_readahead", READAHEAD, flat, default=0)
