"""``vino graft build|check|toolchains``: the commands a graft's author runs.

- ``build(args)``: compile a graft; the source's extension picks the toolchain
  (``vino.sdk.toolchains``), ``.py`` goes through ``vino.pygraft`` for the point
  the source names (or ``--point``).
- ``check(args)``: every load-time check on a module, changing nothing: against
  the reference kernel's points, on a scratch kernel, as a user on a target that
  user owns (or root on ``GLOBAL``), or with ``--registry MODULE:ATTRIBUTE``
  against an application's own registry as a privileged principal.
- ``toolchains(args)``: which graft languages can be built here.

Each returns the exit status ``vino.cli`` documents: 0 success, 1 the compiler or
the loader refused the graft, 2 bad usage or input (a message on stderr).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

__all__ = ["build", "check", "toolchains"]


def build(args: argparse.Namespace) -> int:
    from vino.sdk.build import BuildError, ToolchainMissing, build

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
    except (BuildError, ToolchainMissing) as exc:
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
    try:  # decoded as Registry.install decodes a .py file: bytes no UTF-8 holds replaced
        text = src.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        print(f"vino graft build: cannot read {src}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        layout = LAYOUTS.get(args.point) if args.point else point_of(text, LAYOUTS, str(src))
    except PythonGraftError as exc:
        print(f"vino graft build: {exc}", file=sys.stderr)
        return 1
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


def toolchains(args: argparse.Namespace) -> int:
    from vino.sdk import toolchains

    return toolchains.main([])


def _load_registry(spec: str) -> object:
    """``module:attribute`` -> the application's Registry (or what a callable returns)."""
    import importlib

    from vino.graft import Registry

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--registry wants MODULE:ATTRIBUTE, got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))  # the application's own modules, as python -m does
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, Registry):
        obj = obj()
    if not isinstance(obj, Registry):
        raise ValueError(f"{spec} is a {type(obj).__name__}, not a vino Registry")
    return obj


def _source_hint(path: Path) -> str | None:
    """How to build ``path`` if it is a graft's source rather than a module."""
    from vino.sdk import toolchains

    chain = toolchains.for_source(path)
    if chain is None or chain.extension == ".wat":  # WAT is checked as it is
        return None
    return (f"{path} is {chain.language} source, not a WebAssembly module: build it "
            f"first with `vino graft build {path} -o {path.with_suffix('.wasm')}`, then "
            f"check {path.with_suffix('.wasm')}")


def check(args: argparse.Namespace) -> int:
    from vino.graft import GLOBAL
    from vino.kernel.kernel import Kernel

    path = Path(args.file)
    if not path.is_file():
        print(f"vino graft check: no such file: {path}", file=sys.stderr)
        return 2
    hint = _source_hint(path)
    if hint is not None:
        print(f"vino graft check: {hint}", file=sys.stderr)
        return 2
    if args.registry:
        return _check_in_registry(args, path)
    with tempfile.TemporaryDirectory(prefix="vino-check-") as tmp:
        k = Kernel.boot(Path(tmp) / "check.img", nblocks=256)
        try:
            if args.point not in k.points:
                print(f"vino graft check: no graft point {args.point!r} "
                      f"(points: {', '.join(sorted(k.points))})", file=sys.stderr)
                return 2
            user = k.root if args.as_user == "root" else k.add_user(args.as_user)
            target = _target_for(k, user, args.point) if args.as_user != "root" else GLOBAL
            return _report_check(path, args.point, lambda: k.registry.check(
                args.point, path, user.principal, target))
        finally:
            k.shutdown()


def _report_check(path: Path, point: str, run: object) -> int:
    from vino.errors import GraftRejected

    assert callable(run)
    try:
        checked = run()
    except GraftRejected as exc:
        print(f"REJECTED {path} at {point}: {exc.reason}")
        return 1
    print(f"OK {path} at {point}: {len(checked.wasm)} bytes, "
          f"{'takes' if checked.has_message else 'no'} messages, "
          f"memory {checked.memory_min_bytes // 1024} KiB"
          f"{', may grow' if checked.may_grow else ''}")
    return 0


def _check_in_registry(args: argparse.Namespace, path: Path) -> int:
    """Check against an application's own points, as a privileged principal, globally."""
    from vino.graft import GLOBAL, Registry
    from vino.graft.accounting import Principal

    try:
        reg = _load_registry(args.registry)
    except ValueError as exc:
        print(f"vino graft check: {exc}", file=sys.stderr)
        return 2
    assert isinstance(reg, Registry)
    if args.point not in reg.points:
        print(f"vino graft check: no graft point {args.point!r} in {args.registry} "
              f"(points: {', '.join(sorted(reg.points)) or 'none'})", file=sys.stderr)
        return 2
    checker = Principal("vino-graft-check", privileged=True)
    return _report_check(path, args.point,
                         lambda: reg.check(args.point, path, checker, GLOBAL))


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
