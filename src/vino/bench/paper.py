"""The 1996 figures we compare against (from the paper and its talk slides).

Seltzer, Endo, Small, Smith, "Dealing With Disaster: Surviving Misbehaved Kernel
Extensions", OSDI 1996: µs per invocation on the authors' machine (a 120 MHz
Pentium running VINO), for four sample grafts. ``Total`` is
Begin + Commit + Lock + Graft + Indirection + SFI; Abort replaces Commit when
the graft fails.
"""

from __future__ import annotations

from typing import Final

# The paper's sample grafts, in its column order, and the sample graft of ours
# that plays each one (src/vino/sdk/samples/).
GRAFTS: Final = ("readahead", "evict", "sched", "encrypt")
TITLES: Final = {
    "readahead": "read-ahead",
    "evict": "VM eviction",
    "sched": "scheduling",
    "encrypt": "encryption (4 KiB)",
}
SAMPLES: Final = {
    "readahead": "readahead_stride.wasm",
    "evict": "evict_keep.wasm",
    "sched": "sched_interactive.wasm",
    "encrypt": "chacha20_filter.wasm",
}

# The paper's rows, in its order.
ROWS: Final = ("Begin", "Commit", "Abort", "Lock", "Graft", "Indirection", "SFI", "Total")

# µs per invocation, VINO 1996.
VINO_1996_US: Final[dict[str, dict[str, float]]] = {
    "readahead": {"Begin": 36, "Commit": 28, "Abort": 29, "Lock": 33, "Graft": 2,
                  "Indirection": 1, "SFI": 3, "Total": 103},
    "evict": {"Begin": 52, "Commit": 34, "Abort": 27, "Lock": 34, "Graft": 160,
              "Indirection": 1, "SFI": 26, "Total": 307},
    "sched": {"Begin": 38, "Commit": 30, "Abort": 33, "Lock": 33, "Graft": 35,
              "Indirection": 1, "SFI": 5, "Total": 142},
    "encrypt": {"Begin": 32, "Commit": 32, "Abort": 36, "Lock": 0, "Graft": 166,
                "Indirection": 0, "SFI": 187, "Total": 417},
}
