"""Today's peers of a protected graft call, on the same policy and the same inputs.

For each ``Setup`` (vino.bench.setups) this builds callables that take the
point's arguments and return the policy's answer:

- ``pluggy_hook(pm, key)``: the Python policy as a pluggy hook implementation,
  called through ``PluginManager.hook`` (``firstresult``) by keyword, with no
  protection; ``pluggy_slot(pm, key)``: the same hook under the subsystem's
  policy-slot contract (the filter's block transformed in place), the peer the
  kernel's slot with its graft point is measured against (``vino bench goals``);
- ``PublicWasm``: the *same Wasm graft* instantiated and called with wasmtime's
  public API only -- ``Func.__call__`` and ``Memory.write`` / ``Memory.read``
  for the buffer -- using the point's own encoder and validator, but no
  transaction, no limits, no accounting. Its engine has wasmtime's default
  configuration (no epoch interruption: the graft runs unbounded);
- ``Worker``: the same Wasm graft in a separate process (hardware protection, as
  a microkernel would give it): each call sends the encoded buffer over a
  ``multiprocessing`` pipe, the worker copies it into the graft's memory, calls
  the entry through vino's raw fast path (the fastest call it could make) and
  sends back the result and the output bytes, which the caller validates with
  the point's decoder. One worker process serves all four grafts.

Caveat: the peers copy only the bytes the inputs occupy (``Setup.in_bytes``)
and the output region (``Setup.out_range``), the least work the ABI allows.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import pluggy
import wasmtime

from vino.bench.setups import Setup

PLUGGY_PROJECT: Final = "vino_bench"
_hookspec = pluggy.HookspecMarker(PLUGGY_PROJECT)
_hookimpl = pluggy.HookimplMarker(PLUGGY_PROJECT)

# Worker protocol: request = header (graft index, entry args a0, a1) + buffer bytes;
# reply = header (outcome, result) + output bytes. outcome 0 = returned, 1 = trapped.
_REQ: Final = struct.Struct("<Iii")
_REP: Final = struct.Struct("<ii")
_STOP: Final = b""
WORKER_START_TIMEOUT_S: Final = 60.0


class _Spec:
    """The hook specifications: one per kernel graft point, first result wins."""

    @_hookspec(firstresult=True)
    def vino_readahead(self, of: Any, block: int) -> Any:
        """Blocks to prefetch."""

    @_hookspec(firstresult=True)
    def vino_evict(self, aspace: Any, cands: Any) -> Any:
        """Index of the victim, or the batch of victims (vm.evict's decoded answer)."""

    @_hookspec(firstresult=True)
    def vino_pick(self, group: Any, rows: Any) -> Any:
        """Index of the thread to run."""

    @_hookspec(firstresult=True)
    def vino_filter(self, inode: Any, offset: int, data: bytes, direction: int) -> Any:
        """The transformed block."""


class _Plugin:
    """Implements each hook with the matching Python policy of a set of setups (each bound
    once, so a hook call costs pluggy's dispatch and the policy, nothing of ours)."""

    def __init__(self, policies: dict[str, Callable[..., Any]]) -> None:
        none: Callable[..., Any] = _missing
        self._readahead: Callable[..., Any] = policies.get("readahead", none)
        self._evict: Callable[..., Any] = policies.get("evict", none)
        self._sched: Callable[..., Any] = policies.get("sched", none)
        self._encrypt: Callable[..., Any] = policies.get("encrypt", none)

    @_hookimpl
    def vino_readahead(self, of: Any, block: int) -> Any:
        return self._readahead(of, block)

    @_hookimpl
    def vino_evict(self, aspace: Any, cands: Any) -> Any:
        return self._evict(aspace, cands)

    @_hookimpl
    def vino_pick(self, group: Any, rows: Any) -> Any:
        return self._sched(group, rows)

    @_hookimpl
    def vino_filter(self, inode: Any, offset: int, data: bytes, direction: int) -> Any:
        return self._encrypt(inode, offset, data, direction)


def _missing(*args: Any) -> Any:
    raise LookupError("no set-up was given for this hook")


def plugin_manager(setups: dict[str, Setup]) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PLUGGY_PROJECT)
    pm.add_hookspecs(_Spec)
    pm.register(_Plugin({k: s.python for k, s in setups.items()}))
    return pm


def pluggy_hook(pm: pluggy.PluginManager, key: str) -> Callable[..., Any]:
    """A callable taking the point's arguments positionally and calling the hook by keyword,
    spelled out as a pluggy user writes the call (no mapping of names at run time)."""
    h = pm.hook
    if key == "readahead":
        ra = h.vino_readahead
        return lambda of, block: ra(of=of, block=block)
    if key == "evict":
        ev = h.vino_evict
        return lambda aspace, cands: ev(aspace=aspace, cands=cands)
    if key == "sched":
        pick = h.vino_pick
        return lambda group, rows: pick(group=group, rows=rows)
    if key == "encrypt":
        filt = h.vino_filter
        return lambda inode, offset, data, direction: filt(
            inode=inode, offset=offset, data=data, direction=direction)
    raise KeyError(key)


def pluggy_slot(pm: pluggy.PluginManager, key: str) -> Callable[..., Any]:
    """The pluggy hook as the subsystem's policy slot would hold it, called with the slot's
    arguments (``Setup.hook_args``) under the slot's contract -- what the kernel's graft
    point is measured against. Read-ahead, eviction and scheduling slots return the hook's
    answer; the filter slot (``fs.filter_policy``) transforms the block in place, so this
    one writes the hook's answer back into it, as the kernel's point does."""
    call = pluggy_hook(pm, key)
    if key != "encrypt":
        return call

    def apply(inode: Any, offset: int, data: bytearray, direction: int) -> None:
        data[:] = call(inode, offset, data, direction)

    return apply


class PublicWasm:
    """The sample graft through wasmtime's public API, unprotected."""

    def __init__(self, setup: Setup) -> None:
        self.engine = wasmtime.Engine()
        self.store = wasmtime.Store(self.engine)
        module = wasmtime.Module(self.engine, setup.sample.read_bytes())
        self.instance = wasmtime.Instance(self.store, module, [])
        ex = self.instance.exports(self.store)
        mem, entry, vbuf = ex["memory"], ex[setup.point.entry], ex["vino_buffer"]
        if not (isinstance(mem, wasmtime.Memory) and isinstance(entry, wasmtime.Func)
                and isinstance(vbuf, wasmtime.Func)):
            raise TypeError(f"{setup.sample}: unexpected export kinds")
        self.memory = mem
        self.entry = entry
        self.offset = int(vbuf(self.store))
        if setup.message is not None:
            msg = ex["vino_message"]
            assert isinstance(msg, wasmtime.Func)
            mem.write(self.store, setup.message, self.offset)
            if msg(self.store, len(setup.message)) != 0:
                raise RuntimeError(f"{setup.sample}: message refused")
        size = setup.point.buffer_size
        self.scratch = bytearray(size)
        self.view = memoryview(self.scratch)
        self.encode = setup.point.encode
        self.decode = setup.point.decode
        self.in_bytes = setup.in_bytes
        self.out = setup.out_range

    def __call__(self, *args: Any) -> Any:
        view = self.view
        wasm_args = self.encode(view, *args)
        store = self.store
        off = self.offset
        self.memory.write(store, view[:self.in_bytes].tobytes(), off)
        ret = self.entry(store, *wasm_args)
        if self.out is not None:
            lo, hi = self.out
            self.scratch[lo:hi] = self.memory.read(store, off + lo, off + hi)
        return self.decode(view, ret, *args)


_WorkerSpec = tuple[str, str, int, bytes | None, tuple[int, int] | None]


class _Duplex:
    """Two one-way ``multiprocessing`` connections over a pair of pipes, as one."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.r = Connection(rfd, writable=False)
        self.w = Connection(wfd, readable=False)

    def send_bytes(self, data: bytes) -> None:
        self.w.send_bytes(data)

    def recv_bytes(self) -> bytes:
        return self.r.recv_bytes()

    def poll(self, timeout: float) -> bool:
        return self.r.poll(timeout)

    def send(self, obj: Any) -> None:
        self.w.send(obj)

    def recv(self) -> Any:
        return self.r.recv()

    def close(self) -> None:
        self.r.close()
        self.w.close()


def _worker_main(conn: _Duplex, grafts: list[_WorkerSpec]) -> None:
    """The worker process: one plain store per graft, called through the raw fast path."""
    from vino.graft import fastcall  # imported here: the worker is a fresh interpreter
    from vino.graft.memory import MemoryView

    engine = wasmtime.Engine()
    slots = []
    for path, entry, nparams, message, out in grafts:
        store = wasmtime.Store(engine)
        inst = wasmtime.Instance(store, wasmtime.Module(engine, Path(path).read_bytes()), [])
        ex = inst.exports(store)
        mem, fn, vbuf = ex["memory"], ex[entry], ex["vino_buffer"]
        assert isinstance(mem, wasmtime.Memory) and isinstance(fn, wasmtime.Func)
        assert isinstance(vbuf, wasmtime.Func)
        off = int(vbuf(store))
        if message is not None:
            msg = ex["vino_message"]
            assert isinstance(msg, wasmtime.Func)
            mem.write(store, message, off)
            msg(store, len(message))
        raw = fastcall.RawFunc(store, fn, ("i32",) * nparams, ("i32",))
        view = MemoryView(store, mem)
        slots.append((store, inst, raw, view, off, nparams, out))
    conn.send_bytes(b"ready")
    hdr = _REQ.size
    while True:
        req = conn.recv_bytes()
        if req == _STOP:
            break
        idx, a0, a1 = _REQ.unpack_from(req)
        _, _, raw, view, off, nparams, out = slots[idx]
        view.write(off, req[hdr:])
        rc = raw.call(a0, a1) if nparams == 2 else raw.call0()
        data = view.read(off + out[0], out[1] - out[0]) if out is not None else b""
        conn.send_bytes(_REP.pack(rc, raw.result_i32()) + data)


def worker_entry(rfd: int, wfd: int) -> None:
    """``python -c`` entry of the worker process (see ``Worker``)."""
    conn = _Duplex(rfd, wfd)
    _worker_main(conn, conn.recv())
    conn.close()


class Worker:
    """A process running the sample grafts; ``call(key)`` gives a callable per graft.

    Started as a fresh interpreter (``subprocess``; not ``multiprocessing``'s
    spawn, which would re-import the caller's main module), talking over two
    pipes with ``multiprocessing.connection`` framing.
    """

    def __init__(self, setups: dict[str, Setup]) -> None:
        self.keys = list(setups)
        self.setups = setups
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        code = f"from vino.bench.peers import worker_entry; worker_entry({down_r}, {up_w})"
        self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(down_r, up_w))
        os.close(down_r)
        os.close(up_w)
        self.conn = _Duplex(up_r, down_w)
        spec: list[_WorkerSpec] = [(str(s.sample), s.point.entry, len(s.point.params),
                                    s.message, s.out_range) for s in setups.values()]
        self.conn.send(spec)
        if not self.conn.poll(WORKER_START_TIMEOUT_S) or self.conn.recv_bytes() != b"ready":
            self.close()
            raise RuntimeError("the benchmark worker process did not start")

    def call(self, key: str) -> Callable[..., Any]:
        s = self.setups[key]
        idx = self.keys.index(key)
        scratch = bytearray(s.point.buffer_size)
        view = memoryview(scratch)
        encode, decode = s.point.encode, s.point.decode
        n_in = s.in_bytes
        out = s.out_range
        send, recv = self.conn.send_bytes, self.conn.recv_bytes
        pack = _REQ.pack
        unpack = _REP.unpack_from
        rep = _REP.size

        def remote(*args: Any) -> Any:
            wasm_args = encode(view, *args)
            a0, a1 = (*wasm_args, 0, 0)[:2]
            send(pack(idx, a0, a1) + view[:n_in].tobytes())
            reply = recv()
            rc, ret = unpack(reply)
            if rc:
                raise RuntimeError(f"{key}: the graft trapped in the worker")
            if out is not None:
                lo, hi = out
                scratch[lo:hi] = reply[rep:rep + hi - lo]
            return decode(view, ret, *args)
        return remote

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.conn.send_bytes(_STOP)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.conn.close()
