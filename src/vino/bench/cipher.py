"""The encryption filter side by side: ChaCha20 in vino against a pluggy hook.

``vino bench cipher`` boots the encryption set-up (``setups.build("encrypt")``: one
4 KiB block written at file offset 8192 through ``fs.filter_policy``, the slot the
kernel's write path calls) and times, interleaved round by round
(``timing.interleave``), every way of doing that one call:

- ``simd``: the slot with ``chacha20_filter.wasm``, four ChaCha20 blocks at once
  with WebAssembly SIMD (the sample the speed goals measure);
- ``scalar``: the slot with ``chacha20_filter_scalar.wasm``, its reference, one
  block at a time, on a file of its own with the same key;
- ``kernel``: the slot with ``chacha20_kernel.wasm``, the same filter asking the
  kernel's cipher (``kernel/crypto.py``: the graft-callable ``chacha20``, which runs
  ``cryptography``'s ChaCha20, the very code the pluggy hook runs) to XOR the block
  in the graft's memory;
- ``null``: the slot with a graft that answers without touching the block: the
  protection and the block's copies in and out, no cipher;
- ``pluggy``: the slot holding a pluggy hook (``peers.pluggy_slot``) whose
  implementation is the ``cryptography`` package's ChaCha20 (OpenSSL, a cipher
  object made per call, as the graft sets its state up from the key per block);
- ``cryptography``: that implementation called alone (no pluggy, no slot).

Before timing, the grafts and the hook must give the same ciphertext as
``cryptography`` on the same block. Ratios to ``pluggy`` are taken round by round
and their median quoted; the machine's load average is recorded before and after.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from vino.bench import peers, setups
from vino.bench.timing import Contender, Progress, interleave, plain, ratio, spread
from vino.report import markdown_table

ROUNDS: Final = 15
BATCH_S: Final = 0.02
QUICK_ROUNDS: Final = 2
QUICK_BATCH_S: Final = 0.0005

# Contender -> what it is (the table's first column).
WHAT: Final = {
    "simd": "vino: fs.filter slot, chacha20_filter (Wasm SIMD, 4 blocks at once)",
    "scalar": "vino: fs.filter slot, chacha20_filter_scalar (Wasm, a block at a time)",
    "kernel": "vino: fs.filter slot, chacha20_kernel (the kernel's cipher: cryptography's)",
    "null": "vino: fs.filter slot, a graft that leaves the block alone (no cipher)",
    "pluggy": "pluggy: the same slot, a hook running cryptography's ChaCha20",
    "cryptography": "cryptography's ChaCha20 alone (OpenSSL; a cipher object per call)",
}


def _ciphertext(slot: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
    """What ``slot`` leaves in a fresh copy of the block (the slot writes in place)."""
    inode, offset, block, direction = args
    out = bytearray(block)
    slot(inode, offset, out, direction)
    return bytes(out)


def run(rounds: int = ROUNDS, batch_s: float = BATCH_S, progress: Progress | None = None,
        workdir: Path | None = None) -> dict[str, Any]:
    """Every contender's µs per call and its ratio to the pluggy hook, from one run."""
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="vino-bench-cipher-") as tmp:
        s = setups.build("encrypt", workdir or Path(tmp))
        try:
            slot = peers.pluggy_slot(peers.plugin_manager({"encrypt": s}), "encrypt")
            args = s.hook_args()
            plaintext = bytes(args[2])
            want = s.python(*s.args())
            for name, got in (("simd", _ciphertext(s.hook, args)),
                              ("scalar", _ciphertext(s.hook, s.hook_args("scalar"))),
                              ("kernel", _ciphertext(s.hook, s.hook_args("kernel"))),
                              ("pluggy", _ciphertext(slot, args))):
                if got != want or got == plaintext:
                    raise AssertionError(f"cipher bench: {name} disagrees with cryptography")
            if bytes(args[2]) != plaintext:
                raise AssertionError("cipher bench: a check changed the timed block")
            contenders = [Contender("simd", plain(s.hook, *args)),
                          Contender("scalar", plain(s.hook, *s.hook_args("scalar"))),
                          Contender("kernel", plain(s.hook, *s.hook_args("kernel"))),
                          Contender("null", plain(s.hook, *s.hook_args("null"))),
                          Contender("pluggy", plain(slot, *args)),
                          Contender("cryptography", plain(s.python, *s.args()))]
            series = interleave(contenders, rounds, batch_s, min_calls=2, progress=progress,
                                label="cipher: ")
        finally:
            s.close()
    load.append(os.getloadavg()[0])
    from vino.bench.suite import machine

    return {"machine": machine(), "rounds": rounds, "load_average": load,
            "per_call_us": {k: spread(v).as_dict() for k, v in series.items()},
            "vs_pluggy": {k: ratio(v, series["pluggy"]).median_us for k, v in series.items()}}


def render(result: dict[str, Any]) -> str:
    """The side-by-side table (markdown)."""
    rows = []
    for k, what in WHAT.items():
        f = result["per_call_us"][k]
        rows.append([what, f"{f['median_us']:.2f}", f"{f['p10_us']:.2f}..{f['p90_us']:.2f}",
                     f"{result['vs_pluggy'][k]:.2f}"])
    load = " -> ".join(f"{x:.1f}" for x in result["load_average"])
    return (markdown_table(["one 4 KiB block through fs.filter", "µs (median)", "p10..p90",
                            "÷ pluggy (round by round)"], rows)
            + f"\n\n{result['rounds']} interleaved rounds; load average {load}.")
