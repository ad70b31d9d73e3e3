"""Leak checks of native code: what a loop of calls leaves allocated.

``blocks_kept(run, calls)`` calls ``run()`` ``calls`` times (after a warm-up of a tenth
as many, which fills caches and free lists) and answers how many more memory blocks the
interpreter holds than before: CPython's count of allocated blocks
(``sys.getallocatedblocks``), or, where that count is not kept (``PYTHONMALLOC=malloc``),
the bytes ``tracemalloc`` traces divided by 16. The cyclic collector runs before each
count, and logging is off meanwhile (a handler that keeps records, as pytest's does,
would count as a leak).

A reference kept by mistake on every call -- an int, a tuple, an exception -- leaves at
least ``calls`` blocks; a leak on one path of several leaves ``calls`` times its share.
Callers compare with a small fraction of ``calls``: caches that grow once (a method
cache, an interned name) stay far below it.
"""

from __future__ import annotations

import gc
import logging
import sys
import tracemalloc
from collections.abc import Callable
from typing import Final

__all__ = ["blocks_kept"]

_BYTES_PER_BLOCK: Final = 16  # tracemalloc's measure, in the unit of a small block


def _count() -> int:
    gc.collect()
    blocks = sys.getallocatedblocks()
    if blocks:
        return blocks
    return tracemalloc.get_traced_memory()[0] // _BYTES_PER_BLOCK


def blocks_kept(run: Callable[[], object], calls: int) -> int:
    """The blocks ``calls`` calls of ``run`` left allocated (see the module)."""
    traced = not sys.getallocatedblocks() and not tracemalloc.is_tracing()
    if traced:
        tracemalloc.start()
    logging.disable(logging.CRITICAL)
    try:
        for _ in range(calls // 10 + 10):
            run()
        before = _count()
        for _ in range(calls):
            run()
        return _count() - before
    finally:
        logging.disable(logging.NOTSET)
        if traced:
            tracemalloc.stop()
