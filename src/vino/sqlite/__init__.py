"""SQLite on the vino kernel: an apsw VFS over vino kernel files, and grafts that help it.

- ``vfs.VinoVFS``: SQLite's files are files of a vino process; every page read and
  write goes through the kernel's cache, device model and graft points.
- ``pool.BufferPool``: database pages kept in the process's address space, so that a
  ``vm.evict`` graft decides which pages stay in memory.
- ``advisor.BTreeAdvisor``: reads SQLite's B-tree pages as they pass and tells the
  read-ahead and eviction grafts what it learned (messages).
- ``grafts`` / ``session``: which grafts a session installs, when; one SQLite
  session (process, VFS, grafts, connections).
- ``workloads``: build a database, run lookups, range scans and updates, measure.
- ``crashes`` (power cuts under SQLite), ``tpch`` (TPC-H data and queries).
- ``locks`` (SQLite's lock levels), ``names`` (paths -> kernel names), ``btree``
  (page parsing), ``params`` (every tunable, with units).

Layering: this package uses the kernel and the graft mechanism; nothing below it
imports it. The experiments that ``vino demo sqlite`` prints (default against graft,
encryption at rest, survival of hostile grafts) are ``vino.demo.sqlite``. The grafts' C sources are
``vino/sdk/samples/sqlite_*.c``.
"""

from __future__ import annotations
