"""Every tunable vino has, named, with units.

Limits on modules are load-time checks (a module over them is rejected);
quotas are per principal at run time (going over aborts the transaction).
"""

from __future__ import annotations

from typing import Final

# ---- sandbox ------------------------------------------------------------------
WASM_PAGE: Final = 65536  # bytes in one WebAssembly page
EPOCH_TICK_S: Final = 0.001  # seconds between epoch ticks of the ticker thread
CALL_BUDGET_S: Final = 0.010  # default CPU budget of one graft call, seconds
LOCK_TIMEOUT_S: Final = 0.050  # default wait for a lock before the holder is doomed, seconds
# How long a waiter that doomed a lock's holder waits for the holder's abort to release it,
# seconds. A graft is stopped at its next epoch tick, but a loaded machine may not run its
# thread for tens of ms; giving up sooner failed a waiter (LockTimeout) whose lock was about
# to be free. Bounds the wait for a holder that never looks at its doom (a host transaction).
LOCK_RELEASE_WAIT_S: Final = 1.0
# Wall time one principal's grafts may spend in all, while the host holds a lock other
# principals need (the file system's), per hold: bounds how long they can be kept waiting.
# Twice LOCK_TIMEOUT_S, so a graft holding a lock someone waits for is doomed for that first.
HOLD_GRAFT_WALL_S: Final = 0.100
MAX_WASM_STACK: Final = 512 * 1024  # bytes of native stack a graft may use
# Native stack the host needs below a graft's Wasm frames (its graft-callables' Python and C
# frames, wasmtime's trampolines). A graft call starts only if the thread has
# MAX_WASM_STACK + HOST_STACK_RESERVE bytes of stack left (graft/stack.py).
HOST_STACK_RESERVE: Final = 256 * 1024
# Graft invocations nested in one thread (a graft-callable invoking a point whose graft
# invokes another, ...). One deeper is not made: the default answers and the graft that
# nested is aborted (resource).
MAX_GRAFT_NESTING: Final = 8
# Compiled modules (and what was concluded from them) kept for reuse, per sandbox, per point;
# past this the oldest is dropped, so trying many distinct modules cannot grow the host.
MODULE_CACHE_ENTRIES: Final = 256
# Compiled modules one principal keeps cached at once (its share: another's installs
# never evict these while it holds no more than they do; see Sandbox.keep).
MODULE_CACHE_SHARE: Final = 64

# ---- load-time module limits (the verifier's constants) ---------------------
MAX_MODULE_BYTES: Final = 1 << 20  # size of the .wasm binary
MAX_MEMORY_PAGES: Final = 256  # declared memory minimum / maximum, pages (16 MiB)
PYGRAFT_STACK_RESERVE_BYTES: Final = 16 * 1024  # a compiled Python graft's initial stack
PYGRAFT_MAX_LOCAL_ARRAY_BYTES: Final = 1 << 30  # a larger local array is a compile error;
#                                                 smaller ones are bounded by memory quotas
MAX_TABLE_ELEMENTS: Final = 4096  # declared table minimum / maximum
# Host bytes one table element holds (a function reference is a pointer). A graft's table
# can grow to its declared maximum (else MAX_TABLE_ELEMENTS); that many elements are charged
# to the principal's memory quota at install, and the store refuses growth past them.
TABLE_ELEMENT_BYTES: Final = 8
MAX_FUNCTIONS: Final = 4096  # functions defined by the module
MAX_EXPORTS: Final = 256  # export entries
MAX_IMPORTS: Final = 64  # import entries (each must be a graft-callable of the point)
MAX_TYPES: Final = 256  # function types
MAX_GLOBALS: Final = 256  # globals defined by the module
MAX_DATA_SEGMENTS: Final = 256  # data segments
MAX_ELEMENT_SEGMENTS: Final = 64  # element (table initialiser) segments
# Elements in all element segments together. Each is compiled and kept by the host, and costs
# one byte of the binary: 1,040,000 of them in a 1 MiB module took 16.7 s of CPU and 2.3 GB
# to compile. A table holds at most MAX_TABLE_ELEMENTS, so no segment needs more.
MAX_SEGMENT_ELEMENTS: Final = MAX_TABLE_ELEMENTS
# One function's code, bytes. Compile time and memory grow faster than linearly with the
# largest function (measured: one 1 MB function takes 2.2 s of CPU and 330 MB to compile).
MAX_FUNCTION_BODY_BYTES: Final = 64 << 10
# Locals one function declares. A local costs nothing in the binary ("50000 x i32" is 4
# bytes) but is compiled for: 4096 such functions took 11 s of CPU to compile.
MAX_LOCALS_PER_FUNCTION: Final = 1024
# Loops in one function, and in a module: Cranelift's compile time grows with the square
# of a function's loops (1,024 nested: 0.06 s; 21,800 in one 64 KiB body: 13 s, 240 MB).
MAX_LOOPS_PER_FUNCTION: Final = 1024  # loop instructions in one function body
MAX_LOOPS: Final = 4096  # loop instructions in all of a module's bodies
# Loops weighed by their function's locals and parameters (each loop 1 + their number),
# summed over the module: every local a loop may change is merged at its head, so time
# grows with their product (1,024 nested loops over 1,024 locals: 1.95 s in 12 KB; at
# this weight, 256 of them: 0.39 s).
MAX_LOOP_WEIGHT: Final = 1 << 18  # loops x (1 + locals + parameters), summed
MAX_WAT_CHARS: Final = 8 << 20  # WebAssembly text longer than this is refused unparsed
# A Python graft's source, characters: a longer one is refused uncompiled (the host compiles
# Python itself; measured: 280,000 characters take 0.8 s of CPU and 107 MB to compile).
MAX_PYGRAFT_SOURCE_CHARS: Final = 256 << 10
# Native stack a thread must have left to compile a Python graft: Python's parser and the
# compiler recurse in C as deep as the source nests (measured: 5,000 unary minus signs
# need more than 384 KiB and at most 512 KiB; on a 256 KiB thread 2,900 elifs, or 199
# nested parentheses, killed the process with SIGSEGV). Four times the worst measured.
PYGRAFT_COMPILE_STACK_BYTES: Final = 2 << 20
# A constant the Python graft compiler folds (module constants, constant subexpressions):
# one wider is refused. Python's integers have no bound, so constants squaring each other
# line after line would double in width at every line (25 lines: 10 s and 535 MB).
PYGRAFT_CONST_BITS: Final = 128
MAX_BUFFER_BYTES: Final = 1 << 20  # largest buffer a point may declare

# ---- shares of the host ------------------------------------------------------------
# Live grafts one sandbox hosts with the default allocator: it maps each instance's memory
# separately (2 mappings and a 4 GiB reservation + guard each), and Linux allows 65,530
# mappings and 128 TiB of address space per process: about 32,000 either way. Past this
# an install is refused with a clear reason; a Pool hosts more (its slots).
MAX_GRAFTS_DEFAULT_ALLOCATOR: Final = 30_000
POOL_SHARES: Final = 4  # a pool's default per-principal share: slots // POOL_SHARES (>= 1)

# ---- default per-principal quotas ------------------------------------------------
QUOTA_GRAFTS: Final = 4096  # grafts installed at once, over all points
QUOTA_MEMORY_BYTES: Final = 16 << 20  # Wasm linear memory over all of a principal's grafts
QUOTA_KALLOC_BYTES: Final = 1 << 20  # host memory from kalloc
QUOTA_HANDLES: Final = 256  # live kalloc handles
QUOTA_LOCKS: Final = 64  # locks held at once by one transaction tree
QUOTA_LOG_BYTES: Final = 64 << 10  # total log volume
# Undo entries a principal's grafts may make the host hold at once: recorded by a running
# call, or committed into an enclosing transaction that has not ended. An entry costs the
# host about 350 bytes (a closure and what it keeps; measured), so this bounds ~22 MiB per
# principal. One call's CPU budget alone allows ~10,000-20,000 (an accessor is ~1 us), so
# the quota bites where entries pile up across calls inside one host transaction.
QUOTA_UNDO_ENTRIES: Final = 65536
QUOTA_CPU_TOTAL_S: Final = 60.0  # total CPU time in grafts, seconds
# Install attempts per principal (privileged ones exempt), a token bucket: this many per
# second sustained, after a burst of QUOTA_INSTALL_BURST attempts at once.
QUOTA_INSTALLS_PER_S: Final = 200.0
QUOTA_INSTALL_BURST: Final = 1000  # install attempts at once
# Time another principal's grafts may take inside this principal's operations (its reads
# of a filtered file, its page faults that evict from another address space), per other
# principal: seconds per second sustained, after a burst (graft/hosting.py). Past it the
# point answers with its default in this principal's operations.
QUOTA_HOSTED_CPU_PER_S: Final = 0.10
QUOTA_HOSTED_CPU_BURST_S: Final = 1.0
# Wall time a principal's own grafts may run while the host holds a shared lock another
# thread waits for, across holds: seconds per second sustained, after a burst (hold.py).
# Past it, while others wait, its grafts are not called under the lock (the default).
QUOTA_LOCK_WALL_PER_S: Final = 0.25
QUOTA_LOCK_WALL_BURST_S: Final = 0.5
LOG_LINE_MAX: Final = 512  # longest log line kept, bytes
LOG_LINES_KEPT: Final = 256  # lines kept per graft

# ---- failure policy -----------------------------------------------------------------
REMOVE_AFTER_FAILURES: Final = 1  # aborts before a graft is removed (first failure)
NEVER_REMOVE: Final = 1 << 62  # a remove_after no graft reaches: kept through every abort
#                                (benchmarks and campaigns that abort a graft on purpose)
LOG_LINES_PER_CALL: Final = 16  # log lines one call may add; the rest are dropped and counted
ABORTS_KEPT: Final = 32  # abort records kept per graft for its installer to read
