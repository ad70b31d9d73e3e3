"""The ``vino`` command line.

    vino demo [--python-grafts]    boot the kernel, run the sample grafts (C, or their
                                   Python twins), attack it
    vino demo sqlite [--rows N] [--profile disk-1996|ssd] [--python-grafts]
                                   SQLite on the kernel: defaults, grafts, encryption, attacks
    vino bench [table|savings|scale|all|micro|sqlite|tpch|plugins|python|install|goals|
                crossings|cipher|footprint]
               [--quick] [--json] [--plot FILE.png] [--sf F] [--query-rounds N]
                                   the paper's overhead table beside VINO 1996 and
                                   today's peers (default), savings, scale; micro:
                                   the graft mechanism's own costs; sqlite: SQLite's
                                   CPU time on vino against stock SQLite; tpch: TPC-H
                                   at scale factor F, load and 22 queries; python: the
                                   Python samples against their C twins, compile times;
                                   goals: the protected call's speed goals, threads;
                                   crossings: the native fast path against ctypes;
                                   cipher: the encryption filter's ChaCha20 (SIMD,
                                   scalar) against a pluggy hook, side by side;
                                   footprint: what one cold call touches (valgrind)
    vino graft build FILE.{c,zig,rs,ts,wat,py} [-o OUT.wasm] [--point NAME]
                                   compile a graft; the extension picks the toolchain
    vino graft check FILE --point NAME [--as USER] [--registry MODULE:ATTRIBUTE]
                                   every load-time check, against the kernel's points
                                   or an application's own registry
    vino graft toolchains          which graft languages can be built here
    vino stats                     run the sample workloads and print graft statistics
    vino doctor [--json]           which native parts run here (fast path, stack guard,
                                   epoch ticker, plain read), and why one does not
    vino reliability [--report FILE.md] [--soak SECONDS] [--quick]
                                   fault injection, soaks, fuzzing, rights: the
                                   reliability report (docs/RELIABILITY.md)
    vino fsck [--repair] IMAGE     check every invariant of a file-system image
                                   (read only; the log is replayed in memory);
                                   --repair: fix the damage through the log
    vino crashloop [--full | --attacks] [--seed N]
                                   power cuts at every write of a file-system workload
                                   (cut, torn, lost), each outcome checked
    vino crashloop sqlite [--stride N] [--markdown]
                                   the same for SQLite transactions: every journal mode x
                                   synchronous FULL/EXTRA x plain/encrypted

Exit status: 0 on success; 1 when a check failed (demo, reliability, crashloop: a
loss, doctor: a native part failed to build) or a graft was rejected (graft check);
2 on bad usage or input. fsck follows fsck's convention: 0 clean, 1 damage repaired,
4 damage left, 8 the image unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from vino import graftcmd

# The smallest database `vino demo sqlite` accepts. Below it the cache is a dozen
# frames and a range scan a few hundred rows: whether a policy graft saves device
# requests then depends on where SQLite's pages happen to fall (2,000 to 4,000
# rows passed and failed by turns), so the demo's savings checks would test luck.
# 10,000 is the size the tests run (Config.small); every size measured from it up
# to the default 100,000 held every check.
MIN_SQLITE_ROWS = 10_000


def _demo(args: argparse.Namespace) -> int:
    from vino import demo
    from vino.console import progress

    workdir = Path(args.workdir) if args.workdir else None
    if args.section == "sqlite":
        if args.rows < MIN_SQLITE_ROWS:
            print(f"vino demo sqlite: --rows must be at least {MIN_SQLITE_ROWS}, got "
                  f"{args.rows}", file=sys.stderr)
            return 2
        from vino.kernel.device import DISK_1996, SSD

        profile = SSD if args.profile == "ssd" else DISK_1996
        with progress("vino demo sqlite") as step:
            ok = demo.run_sqlite(sys.stdout, workdir, args.rows, profile, step,
                                 python=args.python_grafts)
        return 0 if ok else 1
    with progress("vino demo") as step:
        ok = demo.run(sys.stdout, workdir, step, python=args.python_grafts)
    return 0 if ok else 1


def _emit(args: argparse.Namespace, data: object, render: Callable[[], str],
          markdown: bool = False) -> None:
    """A benchmark's result: as JSON with ``--json``, else as text (rendered Markdown at a
    terminal when ``markdown``)."""
    if args.json:
        print(json.dumps(data, indent=2))
    elif markdown:
        from vino.console import Output

        Output(sys.stdout).markdown(render())
    else:
        print(render())


def _bench(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from vino.console import progress as progress_bar

    if args.what == "micro":
        from vino.bench import micro

        with progress_bar("vino bench micro") as progress:
            result = micro.run(rounds=args.rounds or 15, progress=progress)
        _emit(args, result, lambda: micro.render(result))
        return 0
    if args.what == "goals":
        from vino.bench import goals

        aims = goals.QUICK if args.quick else goals.FULL
        if args.rounds:
            aims = replace(aims, rounds=args.rounds)
        with progress_bar("vino bench goals") as progress:
            res = goals.run(aims, progress=progress)
        if args.plot:
            print(f"plot written to {goals.plot(res, Path(args.plot))}", file=sys.stderr)
        _emit(args, res, lambda: goals.render(res), markdown=True)
        return 0
    if args.what == "footprint":
        from vino.bench import footprint

        with progress_bar("vino bench footprint") as progress:
            try:
                fp = footprint.run(progress=progress)
            except OSError as exc:
                print(f"vino bench footprint: {exc}", file=sys.stderr)
                return 2
        _emit(args, fp, lambda: footprint.render(fp), markdown=True)
        return 0
    if args.what == "cipher":
        from vino.bench import cipher

        with progress_bar("vino bench cipher") as progress:
            ciph = (cipher.run(cipher.QUICK_ROUNDS, cipher.QUICK_BATCH_S, progress=progress)
                    if args.quick else cipher.run(args.rounds or cipher.ROUNDS,
                                                  progress=progress))
        _emit(args, ciph, lambda: cipher.render(ciph), markdown=True)
        return 0
    if args.what == "crossings":
        from vino.bench import crossings

        with progress_bar("vino bench crossings") as progress:
            res = (crossings.run(1, child_rounds=1, batch_s=0.001, thread_run_s=0.01,
                                 samples=False, progress=progress) if args.quick else
                   crossings.run(args.rounds or 7, progress=progress))
        cross = res
        _emit(args, cross, lambda: crossings.render(cross), markdown=True)
        return 0
    if args.what == "install" and args.against:
        from vino.bench import scale

        with progress_bar("vino bench install --against") as progress:
            cmp = scale.compare_installs(args.against, 1_000 if args.quick else 100_000,
                                         args.rounds or (1 if args.quick else 3), progress)
        _emit(args, cmp, lambda: scale.render_comparison(cmp), markdown=True)
        return 0
    if args.what == "install":
        from vino.bench import install

        res = install.run(quick=args.quick)
        _emit(args, res, lambda: install.render(res))
        return 0
    if args.what == "plugins":
        from vino.bench import plugins

        with progress_bar("vino bench plugins") as progress:
            res = plugins.run(rounds=args.rounds or (3 if args.quick else 15),
                              batch_s=0.02 if args.quick else 0.1, progress=progress)
        _emit(args, res, lambda: plugins.render(res), markdown=True)
        return 0
    if args.what == "python":
        from vino.bench import pygraft

        with progress_bar("vino bench python") as progress:
            result = pygraft.run(rounds=args.rounds or (3 if args.quick else 15),
                                 calls=200 if args.quick else 2000, progress=progress)
        _emit(args, result, lambda: pygraft.render(result))
        return 0
    if args.what == "sqlite":
        from vino.bench import sqlite_cost

        rounds = args.rounds or (1 if args.quick else 7)
        rows = 2000 if args.quick else sqlite_cost.ROWS
        with progress_bar("vino bench sqlite") as progress:
            cost = sqlite_cost.run(rounds=rounds, rows=rows, progress=progress)
        _emit(args, cost.as_dict(), lambda: sqlite_cost.render(cost))
        return 0
    if args.what == "tpch":
        from vino.bench import sqlite_tpch

        sf = args.sf if args.sf is not None else (0.001 if args.quick else 0.01)
        if not 0 < sf <= 1:
            print(f"vino bench tpch: --sf must be in (0, 1], got {sf}", file=sys.stderr)
            return 2
        if args.query_rounds < 0:
            print(f"vino bench tpch: --query-rounds must be at least 1, got "
                  f"{args.query_rounds}", file=sys.stderr)
            return 2
        with progress_bar("vino bench tpch") as progress:
            tp = sqlite_tpch.run(sf=sf, load_rounds=args.rounds or 1,
                                 query_rounds=args.query_rounds or (
                                     1 if args.quick else sqlite_tpch.QUERY_ROUNDS),
                                 progress=progress)
        _emit(args, tp.as_dict(), lambda: sqlite_tpch.render(tp))
        return 0 if not tp.differ else 1
    from vino.bench import suite

    settings = suite.QUICK if args.quick else suite.FULL
    if args.rounds:
        settings = replace(settings, rounds=args.rounds)
    if args.plot and args.what not in ("table", "all"):
        print("vino bench: --plot draws the overhead table: use it with 'table' or 'all'",
              file=sys.stderr)
        return 2
    with progress_bar(f"vino bench {args.what}") as progress:
        result = suite.run(args.what, settings=settings, progress=progress)
    if args.plot:
        from vino.bench.plot import plot

        print(f"plot written to {plot(result, Path(args.plot))}", file=sys.stderr)
    _emit(args, result, lambda: suite.render(result, targets=args.targets), markdown=True)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from vino.demo import stats

    with tempfile.TemporaryDirectory(prefix="vino-stats-") as tmp:
        rows = stats.stats_run(Path(tmp))
    print(json.dumps(rows, indent=2) if args.json else stats.render_stats(rows))
    return 0


def _reliability(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from vino.testing import report as reliability

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

    from vino.console import progress as progress_bar

    with tempfile.TemporaryDirectory(prefix="vino-reliability-") as tmp, \
            progress_bar("vino reliability") as progress:
        rep = reliability.run(settings, Path(tmp), progress)
    text = reliability.render(rep, command)
    if args.report:
        old = Path(args.report)
        if old.is_file():  # hand-written sections of the page survive its regeneration
            text = reliability.keep_hand_written(old.read_text(encoding="utf-8"), text)
        Path(args.report).write_text(text, encoding="utf-8")
        print(f"report written to {args.report}", file=sys.stderr)
    else:
        print(text)
    problems = rep.problems()
    if problems:
        print(f"vino reliability: {len(problems)} problems (see the report)", file=sys.stderr)
    return 1 if problems else 0


def _fsck(args: argparse.Namespace) -> int:
    from vino.kernel.errors import InvalidArgument
    from vino.kernel.fsck import check_image
    from vino.kernel.repair import STATUS_CLEAN, STATUS_DAMAGED, STATUS_UNREADABLE, repair_image

    try:
        if args.repair:
            repaired = repair_image(args.image)
            print(repaired.summary())
            return repaired.status
        report = check_image(args.image)
    except (OSError, InvalidArgument) as exc:
        print(f"vino fsck: {exc}", file=sys.stderr)
        return STATUS_UNREADABLE
    print(report.summary())
    if not report.clean:
        print("vino fsck: damage left as it is (nothing written); `vino fsck --repair` "
              "fixes it", file=sys.stderr)
    return STATUS_CLEAN if report.clean else STATUS_DAMAGED


def _crashloop(args: argparse.Namespace) -> int:
    if args.what == "sqlite":
        return _crashloop_sqlite(args)
    from vino import crashloop
    from vino.console import progress as progress_bar

    if args.attacks:
        return _crashloop_attacks(args.seed)
    runs = [(args.seed + i, 96, 4) for i in range(8)] if args.full else [(args.seed, 48, 1)]
    failures = 0
    for seed, nops, seeds in runs:
        with tempfile.TemporaryDirectory(prefix="vino-crashloop-") as tmp, \
                progress_bar(f"vino crashloop, workload {seed}") as step:
            step(f"{nops} operations, power cut at every write")
            fig = crashloop.run(Path(tmp), seeds=seeds, workload_seed=seed, nops=nops)
        per_model = ", ".join(f"{m} {fig.survived[m]}/{fig.tried[m]}" for m in fig.tried)
        print(f"workload {seed}: {fig.ops} operations, {fig.writes} writes; survived: "
              f"{per_model}")
        for line in fig.failures[:10]:
            print(f"  LOST: {line}")
        failures += len(fig.failures)
    return 1 if failures else 0


def _crashloop_attacks(seed: int) -> int:
    """The crash loops' attacks: cuts during the replay at mount, a full disk, device
    errors at every request followed by a cut (``crashloop._crash_replays``, ``run``
    with ``FULL_DISK_BLOCKS``, ``run_eio``), a filter's seal and unseal cut at every
    write (``sealloop.run``)."""
    from vino import crashloop, sealloop

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vino-crashloop-") as tmp:
        fig = crashloop.run(Path(tmp), workload_seed=seed, replays=True)
        per_model = ", ".join(f"{m} {fig.survived[m]}/{fig.tried[m]}" for m in fig.tried)
        print(f"replays, workload {seed}: {fig.writes} writes; survived: {per_model}; "
              f"{fig.replays} images after cuts of the next mounts' replays")
        failures += fig.failures
        for s in range(seed, seed + 8):
            fig = crashloop.run(Path(tmp), workload_seed=s, seeds=4, nops=96,
                                image_blocks=crashloop.FULL_DISK_BLOCKS)
            per_model = ", ".join(f"{m} {fig.survived[m]}/{fig.tried[m]}" for m in fig.tried)
            print(f"full disk, workload {s}: {fig.ops} operations ({fig.full} met a full "
                  f"disk), {fig.writes} writes; survived: {per_model}")
            failures += fig.failures
        for persistent in (False, True):
            for retry in (False, True):
                fig = crashloop.run_eio(Path(tmp), persistent=persistent, retry_sync=retry,
                                        workload_seed=seed)
                print(f"EIO {'from' if persistent else 'at'} request N"
                      f"{', sync retried' if retry else ''}, then a cut, workload {seed}: "
                      f"{fig.survived['eio']}/{fig.tried['eio']} survived")
                failures += fig.failures
        seal = sealloop.run(Path(tmp))
        for name, n in seal.points.items():
            print(f"filter {name}, cut at every write (cut, torn, lost): {n} cuts, "
                  f"{seal.sealed[name]} left it sealed, the rest unsealed")
        failures += seal.failures
    for line in failures[:10]:
        print(f"  LOST: {line}")
    return 1 if failures else 0


def _crashloop_sqlite(args: argparse.Namespace) -> int:
    from vino.console import progress as progress_bar
    from vino.sqlite import crashes

    if args.stride < 1:
        print(f"vino crashloop sqlite: --stride must be >= 1, got {args.stride}",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vino-crashloop-sqlite-") as tmp, \
            progress_bar("vino crashloop sqlite") as progress:
        figs = crashes.run_all(Path(tmp), stride=args.stride, progress=progress)
    if args.markdown:
        print(crashes.render(figs))
    else:
        for f in figs:
            per_model = ", ".join(f"{m} {f.survived[m]}/{f.tried[m]}" for m in f.tried)
            print(f"{f.mode.name}: {f.writes} writes; survived: {per_model}")
            for x in f.failures[:10]:
                print(f"  LOST: {x.model} at write {x.at_write}: {x.what}")
    return 1 if any(f.failures for f in figs) else 0


def _doctor(args: argparse.Namespace) -> int:
    from vino import doctor

    return doctor.main(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vino", description="Safe, transactional grafts: WebAssembly extensions run in "
        "transactions, a reference kernel built on them, and SQLite on that kernel.",
        epilog="Exit status: 0 success; 1 a check failed or a graft was rejected; 2 bad "
        "usage or input. `vino COMMAND --help` describes each command.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser(
        "demo", help="boot the kernel, run the sample grafts, attack it",
        description="Boot the reference kernel, show what each sample graft changes on "
        "the kernel's own counters, then attack it with hostile grafts and check that "
        "every attack was contained. With 'sqlite': SQLite running on the kernel, with "
        "and without grafts, encryption, and the same attacks. Exits 1 if a check failed.")
    d.add_argument("section", nargs="?", choices=["sqlite"],
                   help="sqlite: run SQLite on the kernel instead of the kernel demo")
    d.add_argument("--workdir", help="keep the kernel images here (default: a temporary "
                   "directory, removed afterwards)")
    d.add_argument("--python-grafts", action="store_true",
                   help="run the samples' Python twins (compiled by vino.pygraft) instead of C")
    d.add_argument("--rows", type=int, default=100_000,
                   help=f"sqlite: rows in the database (default 100000, at least "
                   f"{MIN_SQLITE_ROWS})")
    d.add_argument("--profile", choices=["disk-1996", "ssd"], default="disk-1996",
                   help="sqlite: the device model (default disk-1996)")
    d.set_defaults(fn=_demo)
    b = sub.add_parser(
        "bench", help="benchmarks: the paper's overhead table and more",
        description="Measure graft overheads. table (default): the 1996 paper's overhead "
        "table beside VINO's published numbers and today's peers (wasmtime-py, pluggy, "
        "native Python); savings: what the sample grafts save on their workloads; scale: "
        "many grafts, threads and targets; all: table, savings and scale; micro: the "
        "graft mechanism's own costs; sqlite: SQLite's CPU time on vino against stock "
        "SQLite; plugins: one plugin in vino, Extism, wasmtime-py and pluggy, cost per "
        "call and what each does when it misbehaves; python: the Python samples against "
        "their C twins; install: compiling a module at the loader's limits (CPU, memory) "
        "with each compiler; goals: every speed goal of the protected call (against pluggy, "
        "null graft, graft-callables, threads, sparse calls, installs, eviction savings) with "
        "its target, and the thread scaling (--plot draws it); crossings: the native fast path "
        "into and out of Wasm against the ctypes one, side by side; cipher: the encryption "
        "filter's ChaCha20 in the sandbox (SIMD, scalar) against a pluggy hook running "
        "cryptography's, side by side; footprint: the code and data lines and pages one cold "
        "call touches, per part (under valgrind). Results are printed with "
        "ratios; "
        "the targets they "
        "are held to are in BENCHMARKS.md.")
    b.add_argument("what", nargs="?", default="table",
                   choices=["table", "savings", "scale", "all", "micro", "sqlite", "tpch",
                            "plugins", "python", "install", "goals", "crossings",
                            "cipher", "footprint"],
                   help="which benchmark (default: table)")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.add_argument("--against", metavar="REV", help="install: instead, the mean install time "
                   "at 100,000 grafts (collector running) with this tree and with git "
                   "revision REV's, alternated in fresh interpreters")
    b.add_argument("--sf", type=float, default=None,
                   help="tpch: the TPC-H scale factor (default 0.01; --quick: 0.001)")
    b.add_argument("--plot", metavar="FILE.png", help="draw the overhead table (goals: the "
                   "thread scaling) to FILE.png")
    b.add_argument("--quick", action="store_true",
                   help="small and fast (CI): checks structure, numbers not meaningful")
    b.add_argument("--rounds", type=int, default=0, help="interleaved rounds (default: 21; "
                   "micro: 15; sqlite: 7; tpch: 1, the load's; --quick: 3, sqlite 1)")
    b.add_argument("--query-rounds", type=int, default=0, metavar="N",
                   help="tpch: rounds of the 22 queries, the first cold, the figures the "
                   "medians of the others (default: 4; --quick: 1)")
    b.add_argument("--targets", action="store_true", help="also print each target of "
                   "BENCHMARKS.md with the value measured and whether it was met (markdown)")
    b.set_defaults(fn=_bench)
    g = sub.add_parser("graft", help="build or check a graft",
                       description="Build a graft from source, or run every load-time "
                       "check on a module without installing it.")
    gs = g.add_subparsers(dest="graft_command", required=True, metavar="SUBCOMMAND")
    gb = gs.add_parser(
        "build", help="compile a graft (C, Zig, Rust, AssemblyScript, WAT, Python)",
        description="Compile a graft to WebAssembly. The extension picks the toolchain: "
        ".c and .zig (ziglang, a dependency), .rs (rustc with the wasm32 target), .ts "
        "(AssemblyScript from npm), .wat (assembled), .py (vino.pygraft, a typed subset "
        "of Python). A missing toolchain is named with exactly what to install (`make "
        "toolchains` installs them all). See docs/LANGUAGES.md. Exits 1 if the compiler "
        "refused the graft.")
    gb.add_argument("file", help="the graft's source: FILE.c, .zig, .rs, .ts, .wat or .py")
    gb.add_argument("-o", "--output", help="where to write the module (default: FILE with "
                    "the extension .wasm)")
    gb.add_argument("--point", help="Python: the point it is for (default: its POINT, or the "
                    "point its entry function is named for)")
    gb.set_defaults(fn=graftcmd.build)
    gc = gs.add_parser(
        "check", help="run every load-time check on a module",
        description="Run every check vino makes before installing a graft (imports, "
        "exports, memory, limits, rights), changing nothing. By default against the "
        "reference kernel's points; with --registry, against an application's own. "
        "Exits 1 if the graft would be rejected.")
    gc.add_argument("file", help="the graft: a .wasm module or .wat text (build sources "
                    "first with `vino graft build`)")
    gc.add_argument("--point", required=True, help="the graft point, e.g. fs.readahead "
                    "or, with --registry, one of the application's points")
    gc.add_argument("--as", dest="as_user", default="user",
                    help="kernel points: install as this user, on a target the user owns "
                    "('root' checks a global graft; default: user)")
    gc.add_argument("--registry", metavar="MODULE:ATTRIBUTE",
                    help="the application's Registry (or a function returning one), e.g. "
                    "shop.app:registry; checked as a privileged principal on GLOBAL")
    gc.set_defaults(fn=graftcmd.check)
    gt = gs.add_parser("toolchains", help="which graft languages can be built here",
                       description="List each graft language, its compiler's version, or "
                       "exactly what to install when it is missing.")
    gt.set_defaults(fn=graftcmd.toolchains)
    s = sub.add_parser(
        "stats", help="run the sample workloads, print graft statistics",
        description="Run each sample graft's workload on one kernel and print, per "
        "graft point, the calls, commits, aborts by reason and the time spent.")
    s.add_argument("--json", action="store_true", help="print the statistics as JSON")
    s.set_defaults(fn=_stats)
    dr = sub.add_parser(
        "doctor", help="which native parts run here, and why one does not",
        description="Build (once, from the cache) and load each native part -- the graft "
        "fast path, the stack guard, the epoch ticker, the kernel's plain read -- and say "
        "which runs: native, off (its Python twin asked for by VINO_*=python) or failed, "
        "with the build's or loader's reason. Exits 1 if a part failed.")
    dr.add_argument("--json", action="store_true", help="print the status as JSON")
    dr.set_defaults(fn=_doctor)
    r = sub.add_parser(
        "reliability", help="fault injection, soaks, fuzzing, rights: the reliability "
        "report",
        description="Run every reliability campaign (fault-injection loops, soaks, "
        "fuzzing of the loader and of every point, the rights matrix) and print the "
        "report. Exits 1 if anything was lost.")
    r.add_argument("--report", metavar="FILE.md", help="write the report here (default: "
                   "print it)")
    r.add_argument("--soak", type=float, metavar="SECONDS",
                   help="soak this long (default 10; --quick: 2)")
    r.add_argument("--quick", action="store_true", help="small campaigns (a few seconds)")
    r.set_defaults(fn=_reliability)
    f = sub.add_parser(
        "fsck", help="check every invariant of a file-system image",
        description="Check every invariant of a vino file-system image (superblock, inodes, "
                    "block pointers, bitmap, directory) as the next mount would see it: a "
                    "committed transaction in the log is replayed in memory, the image is "
                    "never written (unless --repair). Exit status: 0 clean, 1 damage "
                    "repaired, 4 damage left, 8 the image unreadable.")
    f.add_argument("--repair", action="store_true",
                   help="fix the damage as e2fsck does, through the log (a power cut "
                        "leaves the image as before or repaired), reporting every change")
    f.add_argument("image", help="the disk image (written only with --repair)")
    f.set_defaults(fn=_fsck)
    c = sub.add_parser(
        "crashloop", help="power cuts at every write of a file-system workload",
        description="SQLite's crash-test method on the file system: a seeded workload of "
                    "creates, writes, truncates, unlinks, renames and syncs is cut at every "
                    "device write with each crash model (cut, torn, lost); after each cut "
                    "the image must pass fsck, mount, and hold a state between the last "
                    "completed sync and the cut. Exit status 1 if any cut lost data.")
    c.add_argument("what", nargs="?", choices=["fs", "sqlite"], default="fs",
                   help="fs (default): the file-system workload; sqlite: SQLite transactions "
                        "in every journal mode x synchronous FULL/EXTRA x plain/encrypted, "
                        "checked with integrity_check and SQLite's documented durability")
    c.add_argument("--stride", type=int, default=1,
                   help="sqlite: cut at every Nth write only (default 1: every write)")
    c.add_argument("--markdown", action="store_true",
                   help="sqlite: print the figures as a Markdown table")
    c.add_argument("--full", action="store_true",
                   help="eight workloads of 96 operations, four seeds per torn/lost point "
                        "(default: one workload of 48 operations, one seed)")
    c.add_argument("--attacks", action="store_true",
                   help="fs: cut the next mount at every write of its replay (and the one "
                        "after it), fill the disk, and fail every device request (EIO, once "
                        "or from then on) before the cut")
    c.add_argument("--seed", type=int, default=11,
                   help="the first workload's seed (default 11)")
    c.set_defaults(fn=_crashloop)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
