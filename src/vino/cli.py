"""The ``vino`` command line.

    vino demo                      boot the kernel, run the sample grafts, attack it
    vino demo sqlite [--rows N] [--profile disk-1996|ssd]
                                   SQLite on the kernel: defaults, grafts, encryption, attacks
    vino bench [table|savings|scale|all|micro|sqlite] [--quick] [--json] [--plot FILE.png]
                                   the paper's overhead table beside VINO 1996 and
                                   today's peers (default), savings, scale; micro:
                                   the graft mechanism's own costs; sqlite: SQLite's
                                   CPU time on vino against stock SQLite
    vino graft build FILE.c|FILE.py [-o OUT.wasm] [--point NAME]
    vino graft check FILE --point NAME [--as USER]
    vino stats                     run the sample workloads and print graft statistics
    vino reliability [--report FILE.md] [--soak SECONDS] [--quick]
                                   fault injection, soaks, fuzzing, rights: the
                                   reliability report (docs/RELIABILITY.md)

Exit status: 0 on success; 1 when a check failed (demo, reliability) or a graft was
rejected (graft check); 2 on bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from vino import demo

    workdir = Path(args.workdir) if args.workdir else None
    if args.section == "sqlite":
        if args.rows < 1:
            print(f"vino demo sqlite: --rows must be positive, got {args.rows}", file=sys.stderr)
            return 2
        from vino.kernel.device import DISK_1996, SSD

        profile = SSD if args.profile == "ssd" else DISK_1996
        return 0 if demo.run_sqlite(sys.stdout, workdir, args.rows, profile) else 1
    ok = demo.run(sys.stdout, workdir)
    return 0 if ok else 1


def _bench(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    if args.what == "micro":
        from vino.bench import micro

        result = micro.run(rounds=args.rounds or 15, progress=progress)
        print(json.dumps(result, indent=2) if args.json else micro.render(result))
        return 0
    if args.what == "sqlite":
        from vino.bench import sqlite_cost

        rounds = args.rounds or (1 if args.quick else 7)
        rows = 2000 if args.quick else sqlite_cost.ROWS
        cost = sqlite_cost.run(rounds=rounds, rows=rows, progress=progress)
        print(json.dumps(cost.as_dict(), indent=2) if args.json else sqlite_cost.render(cost))
        return 0
    from dataclasses import replace

    from vino.bench import suite

    settings = suite.QUICK if args.quick else suite.FULL
    if args.rounds:
        settings = replace(settings, rounds=args.rounds)
    if args.plot and args.what not in ("table", "all"):
        print("vino bench: --plot draws the overhead table: use it with 'table' or 'all'",
              file=sys.stderr)
        return 2
    result = suite.run(args.what, settings=settings, progress=progress)
    if args.plot:
        from vino.bench.plot import plot

        progress(f"plot written to {plot(result, Path(args.plot))}")
    print(json.dumps(result, indent=2) if args.json else suite.render(result))
    return 0


def _graft_build(args: argparse.Namespace) -> int:
    from vino.sdk.build import BuildError, build

    src = Path(args.file)
    if src.suffix == ".py":
        return _graft_build_python(src, args)
    out = Path(args.output) if args.output else src.with_suffix(".wasm")
    if not src.is_file():  # build() reports it as a BuildError; it is bad input here
        print(f"vino graft build: no such file: {src}", file=sys.stderr)
        return 2
    try:
        data = build(src, out)
    except FileNotFoundError as exc:  # e.g. the output's directory does not exist
        print(f"vino graft build: {exc}", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"vino graft build: {exc}", file=sys.stderr)
        return 1
    print(f"{out}: {len(data)} bytes")
    return 0


def _graft_build_python(src: Path, args: argparse.Namespace) -> int:
    import time

    from vino.errors import PythonGraftError
    from vino.kernel.layouts import LAYOUTS
    from vino.pygraft import compile_source
    from vino.pygraft.compiler import point_of

    out = Path(args.output) if args.output else src.with_suffix(".wasm")
    try:
        text = src.read_text()
    except OSError as exc:
        print(f"vino graft build: cannot read {src}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    layout = LAYOUTS.get(args.point) if args.point else point_of(text, LAYOUTS)
    if layout is None:
        print(f"vino graft build: which point is {src} for? Set POINT = \"name\" in it or pass "
              f"--point (points: {', '.join(sorted(LAYOUTS))})", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        compiled = compile_source(text, layout, filename=str(src))
    except PythonGraftError as exc:
        print(f"vino graft build: {exc}", file=sys.stderr)
        return 1
    ms = (time.perf_counter() - t0) * 1e3
    try:
        out.write_bytes(compiled.wasm)
    except OSError as exc:
        print(f"vino graft build: {exc}", file=sys.stderr)
        return 2
    print(f"{out}: {len(compiled.wasm)} bytes for {layout.point} (compiled in {ms:.1f} ms)")
    return 0


def _graft_check(args: argparse.Namespace) -> int:
    from vino.errors import GraftRejected
    from vino.graft import GLOBAL
    from vino.kernel.kernel import Kernel

    path = Path(args.file)
    if not path.is_file():
        print(f"vino graft check: no such file: {path}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vino-check-") as tmp:
        k = Kernel.boot(Path(tmp) / "check.img", nblocks=256)
        try:
            if args.point not in k.points:
                print(f"vino graft check: no graft point {args.point!r} "
                      f"(points: {', '.join(sorted(k.points))})", file=sys.stderr)
                return 2
            user = k.root if args.as_user == "root" else k.add_user(args.as_user)
            target = _target_for(k, user, args.point) if args.as_user != "root" else GLOBAL
            try:
                checked = k.registry.check(args.point, path, user.principal, target)
            except GraftRejected as exc:
                print(f"REJECTED {path} at {args.point}: {exc.reason}")
                return 1
            print(f"OK {path} at {args.point}: {len(checked.wasm)} bytes, "
                  f"{'takes' if checked.has_message else 'no'} messages, "
                  f"memory {checked.memory_min_bytes // 1024} KiB"
                  f"{', may grow' if checked.may_grow else ''}")
            return 0
        finally:
            k.shutdown()


def _target_for(k: object, user: object, point: str) -> object:
    """A target of ``point`` owned by ``user`` on a scratch kernel, for rights checks."""
    from vino.kernel.kernel import Kernel
    from vino.kernel.proc import User

    assert isinstance(k, Kernel) and isinstance(user, User)
    proc = k.spawn(user, "check", k.new_group(user, "check"))
    if point == "vm.evict":
        return k.address_space(proc)
    if point == "sched.pick":
        assert proc.group is not None
        return proc.group
    k.fs.create(user, "check", 0o600)
    of = k.fs.open(proc, "check", "r")
    return of if point == "fs.readahead" else of.inode


def _stats(args: argparse.Namespace) -> int:
    from vino import demo

    with tempfile.TemporaryDirectory(prefix="vino-stats-") as tmp:
        rows = demo.stats_run(Path(tmp))
    print(json.dumps(rows, indent=2) if args.json else demo.render_stats(rows))
    return 0


def _reliability(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from vino import reliability

    settings = reliability.QUICK if args.quick else reliability.Settings()
    if args.soak is not None:
        if args.soak <= 0:
            print(f"vino reliability: --soak must be positive, got {args.soak}",
                  file=sys.stderr)
            return 2
        settings = replace(settings, soak_s=args.soak)
    command = "vino reliability" + (" --quick" if args.quick else "") + (
        f" --soak {args.soak:g}" if args.soak is not None else "") + (
        f" --report {args.report}" if args.report else "")

    def progress(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="vino-reliability-") as tmp:
        rep = reliability.run(settings, Path(tmp), progress)
    text = reliability.render(rep, command)
    if args.report:
        Path(args.report).write_text(text, encoding="utf-8")
        progress(f"report written to {args.report}")
    else:
        print(text)
    problems = rep.problems()
    if problems:
        print(f"vino reliability: {len(problems)} problems (see the report)", file=sys.stderr)
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vino", description="Safe, transactional grafts.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="boot the kernel, run the sample grafts, attack it")
    d.add_argument("--workdir", help="keep the kernel images here (default: a temp dir)")
    d.add_argument("section", nargs="?", choices=["sqlite"],
                   help="sqlite: run SQLite on the kernel instead")
    d.add_argument("--rows", type=int, default=100_000,
                   help="sqlite: rows in the database (default 100000)")
    d.add_argument("--profile", choices=["disk-1996", "ssd"], default="disk-1996",
                   help="sqlite: the device model (default disk-1996)")
    d.set_defaults(fn=_demo)
    b = sub.add_parser("bench", help="benchmarks: the paper's overhead table and more")
    b.add_argument("what", nargs="?", default="table",
                   choices=["table", "savings", "scale", "all", "micro", "sqlite"],
                   help="table (default): overhead table + peers; all: table, savings, scale")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.add_argument("--plot", metavar="FILE.png", help="draw the overhead table to FILE.png")
    b.add_argument("--quick", action="store_true",
                   help="small and fast (CI): checks structure, numbers not meaningful")
    b.add_argument("--rounds", type=int, default=0, help="interleaved rounds (default: 21; "
                   "micro: 15; sqlite: 7; --quick: 3, sqlite 1)")
    b.set_defaults(fn=_bench)
    g = sub.add_parser("graft", help="build or check a graft")
    gs = g.add_subparsers(dest="graft_command", required=True)
    gb = gs.add_parser("build", help="compile C (with the SDK) or Python (vino.pygraft) "
                       "to a graft")
    gb.add_argument("file")
    gb.add_argument("-o", "--output")
    gb.add_argument("--point", help="Python: the point it is for (default: its POINT, or the "
                    "point its entry function is named for)")
    gb.set_defaults(fn=_graft_build)
    gc = gs.add_parser("check", help="run every load-time check")
    gc.add_argument("file")
    gc.add_argument("--point", required=True)
    gc.add_argument("--as", dest="as_user", default="user",
                    help="install as this user ('root' checks a global graft)")
    gc.set_defaults(fn=_graft_check)
    s = sub.add_parser("stats", help="run the sample workloads, print graft statistics")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_stats)
    r = sub.add_parser("reliability", help="fault injection, soaks, fuzzing, rights: the "
                       "reliability report")
    r.add_argument("--report", metavar="FILE.md", help="write the report here (default: "
                   "print it)")
    r.add_argument("--soak", type=float, metavar="SECONDS",
                   help="soak this long (default 10; --quick: 2)")
    r.add_argument("--quick", action="store_true", help="small campaigns (a few seconds)")
    r.set_defaults(fn=_reliability)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
