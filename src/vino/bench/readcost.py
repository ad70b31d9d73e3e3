"""What a cached page read costs, in instructions (``python -m vino.bench.readcost``).

One TPC-H query (default Q14) at a small scale factor (default 0.02), counted by
valgrind's callgrind -- instructions, which a loaded machine does not move, where CPU
time does. The data is generated and loaded once, outside the simulation, into a vino
disk image and a stock SQLite file (``vino.bench.sqlite_tpch``'s settings). Then each
contender runs in a child process under callgrind with collection off until the query
starts and off again when it has been fetched (callgrind client requests), so only the
query is counted:

- ``vino``: a Session (no grafts) on a kernel booted cold from the image with frames
  for the whole database (as ``vino bench tpch``'s "cache holds the database"): the
  query twice, ``cold`` (its first reads miss the kernel's cache) and ``warm`` (every
  page read a hit);
- ``stock``: SQLite on the file (its Unix VFS, the host's page cache);
- ``python VFS``: the file through ``sqlite_tpch``'s pass-through VFS in Python (the
  floor of a VFS in Python).

Each figure is the instructions of the query (``Ir``) and, for vino, the VFS's page
reads (``VfsStats.reads``) and the instructions per read. The count is exact and
repeatable (``PYTHONHASHSEED=0``): a change to the read path is measured by running this
before and after it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

SF: Final = 0.02
QUERY: Final = 14
CONTENDERS: Final = ("vino", "stock", "python VFS")


def _prepare(workdir: Path, sf: float) -> dict[str, Any]:
    """Load the data into ``vino.img`` and ``stock.db``; what the children need."""
    import apsw

    from vino.bench import sqlite_tpch
    from vino.kernel.kernel import Kernel
    from vino.sqlite import tpch
    from vino.sqlite.session import Session, configure

    tables = tpch.generate(sf, 1)
    raw = sum(len(repr(r)) for rows in tables.values() for r in rows)
    nblocks = max(sqlite_tpch.MIN_IMAGE_BLOCKS, sqlite_tpch.IMAGE_HEADROOM * raw // 4096)
    k = Kernel.boot(workdir / "vino.img", nblocks=nblocks, frames=sqlite_tpch.KERNEL_FRAMES)
    k.fs.quota.sole_user()  # one user's database: no share to keep
    try:
        with Session(k, k.add_user("tpch"), "tpch.db") as s:
            tpch.load(s.db, tables)
        db_bytes = k.fs.stat("tpch.db").size
    finally:
        k.shutdown()
    stock = apsw.Connection(str(workdir / "stock.db"))
    try:
        configure(stock)
        tpch.load(stock, tables)
    finally:
        stock.close()
    return {"frames": -(-db_bytes // 4096) + sqlite_tpch.KERNEL_FRAMES}


def _child(workdir: Path, who: str, query: int, sf: float, frames: int) -> None:
    """Under callgrind: the query on ``who``, collection on around it only; its counts
    (page reads) as JSON on stdout."""
    import apsw

    from vino.bench import sqlite_tpch
    from vino.bench.footprint import _marker
    from vino.kernel.kernel import Kernel
    from vino.sqlite import tpch
    from vino.sqlite.session import Session, configure

    lib = _marker()
    sql = tpch.queries(sf)[query]

    def counted(db: apsw.Connection, name: str) -> None:
        lib.vino_fp_zero()
        lib.vino_fp_toggle()
        db.execute(sql).fetchall()
        lib.vino_fp_toggle()
        lib.vino_fp_dump(name.encode())

    out: dict[str, Any] = {}
    if who == "vino":
        k = Kernel.boot(workdir / "vino.img", fresh=False, frames=frames)
        k.fs.quota.sole_user()  # one user's database: no share to keep
        try:
            with Session(k, k.add_user("tpch"), "tpch.db") as s:
                for phase in ("cold", "warm"):
                    before = s.vfs.stats.reads
                    counted(s.db, phase)
                    out[phase] = {"reads": s.vfs.stats.reads - before}
        finally:
            k.shutdown()
    elif who == "stock":
        db = apsw.Connection(str(workdir / "stock.db"))
        configure(db)
        counted(db, "stock")
        db.close()
    else:
        vfs = sqlite_tpch._PassThroughVFS("vino-readcost-passthrough")
        db = apsw.Connection(str(workdir / "stock.db"), vfs="vino-readcost-passthrough")
        configure(db)
        counted(db, "python VFS")
        db.close()
        vfs.unregister()
    print(json.dumps(out))


def _instructions(text: str) -> int:
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if m is None:
        raise OSError("callgrind wrote no total")
    return int(m.group(1))


def run(sf: float = SF, query: int = QUERY, contenders: tuple[str, ...] = CONTENDERS,
        keep: Path | None = None) -> dict[str, Any]:
    """Each contender's instructions for the query (vino: cold and warm, with page reads
    and instructions per read); ``keep``: a directory the callgrind files are copied to
    (for ``callgrind_annotate``)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise OSError("valgrind is not installed (Debian: apt-get install valgrind)")
    from vino.bench.footprint import _marker

    _marker()  # built here, outside the simulation
    result: dict[str, Any] = {"sf": sf, "query": query}
    with tempfile.TemporaryDirectory(prefix="vino-readcost-") as tmp:
        work = Path(tmp)
        prep = _prepare(work, sf)
        for who in contenders:
            out = work / f"cg-{who.replace(' ', '_')}"
            out.mkdir()
            cmd = [valgrind, "--tool=callgrind", "--collect-atstart=no",
                   f"--callgrind-out-file={out / 'callgrind.out'}", sys.executable, "-m",
                   "vino.bench.readcost", "--child", str(work), who, str(query), str(sf),
                   str(prep["frames"])]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  env=dict(os.environ, PYTHONHASHSEED="0"))
            if done.returncode != 0:
                raise OSError(f"callgrind failed: {done.stderr.strip()[-800:]}")
            counts = json.loads(done.stdout.strip().splitlines()[-1])
            for f in out.glob("callgrind.out.*"):
                text = f.read_text()
                m = re.search(r"^desc: Trigger: Client Request: (.+)$", text, re.M)
                if m is None:
                    continue
                phase = m.group(1).strip()
                ir = _instructions(text)
                name = f"vino, {phase}" if who == "vino" else who
                entry: dict[str, Any] = {"instructions": ir}
                if phase in counts:
                    reads = counts[phase]["reads"]
                    entry |= {"reads": reads, "per_read": ir / reads if reads else None}
                result[name] = entry
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    tag = name.replace(", ", "-").replace(" ", "_")
                    shutil.copyfile(f, keep / f"callgrind.{tag}")
    return result


def render(r: dict[str, Any]) -> str:
    lines = [f"TPC-H Q{r['query']} at sf {r['sf']} (callgrind, instructions of the query)"]
    for name, e in r.items():
        if not isinstance(e, dict):
            continue
        extra = (f", {e['reads']:,} page reads, {e['per_read']:,.0f} a read"
                 if e.get("reads") else "")
        lines.append(f"  {name}: {e['instructions'] / 1e6:,.1f} M{extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--child":
        _child(Path(args[1]), args[2], int(args[3]), float(args[4]), int(args[5]))
        return
    p = argparse.ArgumentParser(prog="python -m vino.bench.readcost")
    p.add_argument("--sf", type=float, default=SF)
    p.add_argument("--query", type=int, default=QUERY)
    p.add_argument("--only", choices=CONTENDERS, action="append")
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep", type=Path, help="copy the callgrind files here")
    a = p.parse_args(args)
    r = run(a.sf, a.query, tuple(a.only) if a.only else CONTENDERS, a.keep)
    print(json.dumps(r, indent=1) if a.json else render(r))


if __name__ == "__main__":
    main()
