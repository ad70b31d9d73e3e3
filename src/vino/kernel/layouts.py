"""The five kernel graft points' buffer layouts, declared once (docs/ABI.md in data).

``LAYOUTS[point]`` is the ``vino.graft.layout.Layout`` of each kernel point: its
entry, arguments, buffer size, fields (offsets, kinds, counts) and own
graft-callables. Everything else reads it instead of restating it:

- the points (``vino.kernel.points``) take their name, entry, buffer size, Wasm
  parameters and callables' types from here, and their encoders and decoders take
  their structs and offsets from ``Layout.rows`` / ``Layout.elements`` / ``field``;
- ``vino.kernel.sched.pack_threads`` packs ``PICK``'s rows;
- the Python graft compiler and its plain-Python shim read field names, offsets
  and counts.

``tests/kernel/test_layouts.py`` holds the encoders' bytes, the C header
``vino/sdk/vino.h`` (its ``VINO_CHECK_OFFSET`` lines and sizes) and docs/ABI.md
(every offset, type, count and buffer size of its tables) to these objects, so
the spellings cannot drift apart.

Invariant: a field's count is the limit named in ``kernel/params.py`` (read-ahead
history and answers, eviction and pick candidates, further victims, the filter's block), so a limit
changed there changes the layout, and the tests say which documents to update.
"""

from __future__ import annotations

from typing import Final

from vino.graft.fastcall import I32
from vino.graft.layout import I32K, U8, U32, U64, Arg, Field, Layout, Struct
from vino.kernel import params

PAD = True

EVICT_CAND: Final = Struct("vino_evict_cand", (
    Field("page_id", U32, 0),
    Field("vpn", U32, 4),
    Field("flags", U32, 8),  # PAGE_REFERENCED | PAGE_DIRTY
    Field("pad", U32, 12, pad=PAD),
    Field("last_use", U64, 16),  # larger = used more recently
))

THREAD: Final = Struct("vino_thread", (
    Field("tid", U32, 0),
    Field("priority", I32K, 4),
    Field("cpu_ns", U64, 8),
    Field("waited_ns", U64, 16),
    Field("flags", U32, 24),  # THREAD_INTERACTIVE
    Field("pad", U32, 28, pad=PAD),
))

READAHEAD: Final = Layout(
    point="fs.readahead", entry="vino_readahead", buffer_size=256,
    fields=Struct("vino_ra_buf", (
        Field("file_blocks", U32, 0),  # file size in blocks
        Field("block", U32, 4),  # block just read
        Field("max_out", U32, 8),  # answer at most this many blocks
        Field("n_hist", U32, 12),  # entries valid in hist
        Field("hist", U32, 16, count=params.READAHEAD_HISTORY, valid="n_hist"),
        Field("out", U32, 16 + 4 * params.READAHEAD_HISTORY,
              count=params.READAHEAD_MAX_OUT_LIMIT, valid="max_out", writable=True),
    )))

_EVICT_MORE_AT: Final = 8 + EVICT_CAND.size * params.MAX_EVICT_CANDIDATES

# The answer is the victim's index, plus EVICT_MORE_UNIT times how many further victims
# the graft names in more[] (the next ones to go, in order; a graft that names none
# answers with the index alone, as before more[] existed).
EVICT: Final = Layout(
    point="vm.evict", entry="vino_evict",
    buffer_size=_EVICT_MORE_AT + 4 * params.MAX_EVICT_MORE,
    fields=Struct("vino_evict_buf", (
        Field("n", U32, 0),
        Field("pad", U32, 4, pad=PAD),
        Field("cand", EVICT_CAND, 8, count=params.MAX_EVICT_CANDIDATES, valid="n"),
        Field("more", U32, _EVICT_MORE_AT, count=params.MAX_EVICT_MORE,
              writable=True),  # indices into cand, the order they are to go in
    )),
    callables={"vm_hint": ((I32, I32), (I32,))})

PICK: Final = Layout(
    point="sched.pick", entry="vino_pick",
    buffer_size=8 + THREAD.size * params.MAX_PICK_CANDIDATES,
    fields=Struct("vino_sched_buf", (
        Field("n", U32, 0),
        Field("pad", U32, 4, pad=PAD),
        Field("thread", THREAD, 8, count=params.MAX_PICK_CANDIDATES, valid="n"),
    )),
    callables={"sched_set_priority": ((I32, I32), (I32,))})

FILTER: Final = Layout(
    point="fs.filter", entry="vino_filter", buffer_size=16 + params.BLOCK_SIZE,
    fields=Struct("vino_filter_buf", (
        Field("file_offset", U64, 0),
        Field("len", U32, 8),  # bytes valid in data
        Field("file_id", U32, 12),
        Field("data", U8, 16, count=params.BLOCK_SIZE, valid="len", writable=True),
    )),
    args=(Arg("direction"), Arg("length")),  # direction 0 = write (plaintext in), 1 = read
    # The kernel's cipher (kernel/crypto.py): key, nonce, counter, data, len -> len or -1.
    callables={"chacha20": ((I32, I32, I32, I32, I32), (I32,))})

ACCESS: Final = Layout(
    point="fs.access", entry="vino_on_access", buffer_size=24, kind="event",
    fields=Struct("vino_access_buf", (
        Field("file_id", U32, 0),
        Field("block", U32, 4),
        Field("op", U32, 8),  # 0 = read, 1 = write
        Field("pad", U32, 12, pad=PAD),
        Field("time_ns", U64, 16),
    )))

EVICT_MORE_UNIT: Final = 1 << 16  # vm.evict's answer: index + EVICT_MORE_UNIT * len(more)

LAYOUTS: Final[dict[str, Layout]] = {
    lay.point: lay for lay in (READAHEAD, EVICT, PICK, FILTER, ACCESS)}
