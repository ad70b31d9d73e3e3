"""Attacks through Python grafts: make the host's own compiler work for nothing, or forever.

A Python graft (``vino.pygraft``) is compiled to WebAssembly by the host, in the
installer's thread, before the loader sees a module. Found: that compile ran before
every check the loader makes first -- the target's kind, the installer's rights, the
CPU left in its quota, a size limit -- so a principal with no rights at all could
make the host parse and compile a source of any length; and the compiler folded
module constants with Python's unbounded integers, so thirty lines of constants
squaring each other (``B = A * A``, ``C = B * B``, ...) held the host for hours and
took all its memory (at 25 lines: 10 s and 535 MB). Now the same cheap checks come
first, the source has a length limit (``MAX_PYGRAFT_SOURCE_CHARS``), its compile is
charged to the installer, and a folded constant wider than ``PYGRAFT_CONST_BITS`` is
refused. Each attack counts the compiles it caused and checks that nothing changed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import vino.pygraft
from vino import limits
from vino.errors import AbortReason, GraftRejected, PythonGraftError
from vino.graft import GLOBAL, Principal, Quota
from vino.testing.world import LAYOUT as PICK_LAYOUT

from .engine_caches import cache_entries
from .harness import DEFAULT_ANSWER, Tenancy, in_child, pick_returning

# A Python graft for atk.pick (its layout: the input x): answers x.
PY_PICK = "def pick(x: int) -> int:\n    return x\n"


def _squaring(lines: int) -> str:
    """Module constants each the square of the one before: 64 * 2**(lines-1) bits."""
    consts = "A0 = 1 << 64\n" + "".join(f"A{i} = A{i - 1} * A{i - 1}\n"
                                        for i in range(1, lines))
    return consts + PY_PICK


class Compiles:
    """Counts the host's compiles of Python grafts and of modules."""

    def __init__(self, t: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
        self.python = 0
        self.modules = 0
        real_py = vino.pygraft.compile_source
        real_mod = t.registry.sandbox.compile

        def py(*a: Any, **kw: Any) -> Any:
            self.python += 1
            return real_py(*a, **kw)

        def mod(wasm: bytes) -> Any:
            self.modules += 1
            return real_mod(wasm)

        monkeypatch.setattr(vino.pygraft, "compile_source", py)
        monkeypatch.setattr(t.registry.sandbox, "compile", mod)


@pytest.fixture
def arena(tenancy: Tenancy) -> Tenancy:
    tenancy.install(pick_returning(3), tenancy.root, GLOBAL, name="bystander")
    return tenancy


def _refused(t: Tenancy, monkeypatch: pytest.MonkeyPatch, source: str, why: str, *,
             target: Any = "t1", principal: Principal | None = None,
             python_compiles: int = 0) -> None:
    spy = Compiles(t, monkeypatch)
    before = t.snapshot()
    caches = cache_entries(t)
    with pytest.raises(GraftRejected) as info:
        t.install(source, principal, target, name="evil")
    assert why in info.value.reason, info.value.reason
    assert (spy.python, spy.modules) == (python_compiles, 0)
    t.assert_unchanged(before)
    assert cache_entries(t) == caches
    assert t.pick("elsewhere", 0) == 3  # the bystander still answers


def test_python_graft_whose_constants_square_themselves_is_refused_before_they_grow(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    # 24 lines: a 64 MB integer, seconds of CPU, before the fix (each further line
    # doubles both). Refused at the third line: 256 bits.
    _refused(arena, monkeypatch, _squaring(24),
             f"a constant wider than {limits.PYGRAFT_CONST_BITS} bits", python_compiles=1)


def test_python_graft_squaring_a_constant_inside_its_function_is_refused(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    src = ("A = 1 << 64\n"
           "def pick(x: int) -> int:\n"
           "    return x + (A * A * A) // (A * A * A)\n")
    _refused(arena, monkeypatch, src,
             f"a constant wider than {limits.PYGRAFT_CONST_BITS} bits", python_compiles=1)


def test_python_constants_as_wide_as_the_limit_still_fold(arena: Tenancy) -> None:
    # (1 << 64) - 1 and its square fit in PYGRAFT_CONST_BITS: Python's value, folded.
    src = ("M = (1 << 64) - 1\n"
           "S = M * M\n"
           "def pick(x: int) -> int:\n"
           "    return x + (S // M - M)\n")
    arena.install(src)
    assert arena.pick("t1", 9) == 9


def test_python_graft_whose_state_fills_a_data_segment_past_the_module_limit_is_refused_unbuilt(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1.6 MB of data from one line; at 2,000,000 elements the host spent 6 s and 1.2 GB
    # building a 16 MB module the loader then refused for its size.
    src = "X: list[int] = [1] * 200000\ndef pick(x: int) -> int:\n    return x + X[0] - 1\n"
    _refused(arena, monkeypatch, src, "1600000 bytes of initialised state; a module holds "
             f"at most {limits.MAX_MODULE_BYTES}", python_compiles=1)


@pytest.mark.parametrize("source", [
    "def pick(x: int) -> int:\n    \u00e9 = 1\n    return x + \u00e9 - 1\n",
    "\u011d: int = 3\ndef pick(x: int) -> int:\n    return x\n",
    "def h\u0113lp(a: int) -> int:\n    return a\n"
    "def pick(x: int) -> int:\n    return h\u0113lp(x)\n",
    "def pick(x: int) -> int:\n    for \u012b in range(3):\n        pass\n    return x\n",
], ids=["local", "state", "helper", "loop"])
def test_python_graft_with_a_non_ascii_name_is_refused_in_words_not_by_an_internal_error(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    # Valid Python, but the names went into WebAssembly text as they were: the text did
    # not parse and the install raised AssertionError ("emitted invalid WAT"), not
    # GraftRejected, into whatever host code installs tenants' grafts.
    _refused(arena, monkeypatch, source, "a name that is not ASCII", python_compiles=1)


def test_python_graft_nested_too_deeply_for_the_parser_is_refused_in_words(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    # 5,000 additions in a row: Python's parser raises RecursionError (not SyntaxError),
    # which escaped the install instead of GraftRejected.
    src = "def pick(x: int) -> int:\n    return x" + " + 1" * 5000 + "\n"
    _refused(arena, monkeypatch, src, "nested too deeply", python_compiles=1)


@pytest.mark.parametrize(("source", "target", "why"), [
    (_squaring(40), GLOBAL, "may not graft atk.pick on GLOBAL"),
    ("def pick(x: int) -> int:\n    return (\n", GLOBAL, "may not graft atk.pick on GLOBAL"),
    (_squaring(40), 17, "is not a target of atk.pick"),
])
def test_principal_without_rights_cannot_make_the_host_compile_a_python_graft(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch, source: str, target: Any,
        why: str) -> None:
    _refused(arena, monkeypatch, source, why, target=target)


def test_python_source_too_long_to_compile_is_refused_uncompiled(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    src = PY_PICK + "#" * limits.MAX_PYGRAFT_SOURCE_CHARS + "\n"
    _refused(arena, monkeypatch, src, f"the limit is {limits.MAX_PYGRAFT_SOURCE_CHARS}")


def test_principal_out_of_cpu_cannot_make_the_host_compile_a_python_graft(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    broke = Principal("broke", Quota(cpu_total_s=0.0))
    _refused(arena, monkeypatch, PY_PICK, "has used its total CPU quota", principal=broke)


def test_compiling_a_python_graft_is_charged_to_its_installer(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    # A source the Python compiler refuses (after its work) never reaches the module
    # compiler: whatever the installer was charged was the Python compile's.
    src = "X = 1\n" * 2000 + "def pick(x: int) -> int:\n    return y\n"
    cpu = arena.alice.usage.cpu_ns
    _refused(arena, monkeypatch, src, "y", python_compiles=1)
    assert arena.alice.usage.cpu_ns > cpu


# A Python graft is compiled, never run by the host: every way plain Python offers to
# climb from a value to the interpreter (introspection, imports, builtins that reach
# frames or globals, code that runs when a value is formatted, compared or destroyed)
# must be refused at compile time, in words, with nothing compiled to a module.
_H = "def pick(x: int) -> int:\n"
INTROSPECTION = {
    "subclasses": _H + "    return x.__class__.__base__.__subclasses__()\n",
    "dunder attribute": _H + "    y = x.__class__\n    return 0\n",
    "import": "import gc\n" + _H + "    return 0\n",
    "from os import": "from os import system\n" + _H + "    return 0\n",
    "__import__": _H + "    __import__('os').system('true')\n    return 0\n",
    "getattr": _H + "    return getattr(x, '__class__')\n",
    "globals": _H + "    g = globals()\n    return 0\n",
    "eval": _H + "    return eval('1')\n",
    "format string": "from vino.pygraft import log\n" + _H
                     + "    log('{0.__class__}'.format(x))\n    return 0\n",
    "f-string": "from vino.pygraft import log\n" + _H + "    log(f'{x.__class__}')\n    return 0\n",
    "generator frame": _H + "    g = (i for i in range(3))\n    return g.gi_frame\n",
    "yield": _H + "    yield 1\n    return 0\n",
    "traceback": _H + "    try:\n        return 1 // 0\n    except Exception as e:\n"
                 "        return e.__traceback__\n",
    "lambda": _H + "    f = lambda: 0\n    return 0\n",
    "class with __del__ / __eq__ / __index__": "class A:\n    def __index__(self) -> int:\n"
                                                "        return 0\n" + _H + "    return 0\n",
    "decorator": "def d(f: int) -> int:\n    return f\n@d\n" + _H + "    return 0\n",
    "default argument": "def pick(x: int = __import__('os').getpid()) -> int:\n    return 0\n",
    "walrus": _H + "    return (y := x)\n",
    "nested function": _H + "    def g() -> int:\n        return 0\n    return g()\n",
    "global __builtins__": _H + "    global __builtins__\n    return 0\n",
    "string constant": _H + "    return int('7')\n",
}


@pytest.mark.parametrize("name", list(INTROSPECTION))
def test_python_graft_reaching_for_the_interpreter_is_refused_at_compile_time(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _refused(arena, monkeypatch, INTROSPECTION[name], "", python_compiles=1)


def test_python_graft_whose_annotations_and_assert_message_run_code_never_runs_it(
        arena: Tenancy, tmp_path: Path) -> None:
    # What plain Python would evaluate at definition or on failure -- annotations, an
    # assert's message -- is not compiled, so not run: the host never executes the text.
    marker = tmp_path / "ran"
    touch = f"open({str(marker)!r}, 'w')"
    src = (f"def pick(x: {touch}) -> {touch}:\n"
           f"    assert x < 1000, {touch}\n"
           "    return x\n")
    g = arena.install(src)
    assert arena.pick("t1", 4) == 4 and arena.pick("t1", 2000) == DEFAULT_ANSWER  # trapped
    assert not marker.exists()
    assert g.removal is not None and g.removal.reason is AbortReason.TRAP


@pytest.mark.parametrize("source", [
    "# \ud800\n" + PY_PICK,
    "from vino.pygraft import log\n" + _H + "    log('\\ud800')\n    return x\n",
], ids=["in the source", "in a log string"])
def test_python_graft_with_a_lone_surrogate_is_refused_in_words_not_by_an_encoding_error(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    # A str may hold a lone surrogate (U+D800), which UTF-8 cannot: in the source, the
    # parser raised UnicodeEncodeError; in a log() string (an escape in valid source),
    # the compiler did, encoding it for the module's data. Either way the install raised
    # it, not GraftRejected, into whatever host code installs tenants' grafts.
    _refused(arena, monkeypatch, source, "not valid Unicode (a lone surrogate)",
             python_compiles=1)


@pytest.mark.parametrize(("source", "said"), [
    (("def pick(x: int) -> int:\n    return x" + " + 1" * 5000 + "\n").encode(),
     "nested too deeply"),
    (b"def pick(x: int) -> int:\n    return (\n", "not valid Python"),
], ids=["nested past the parser", "not Python"])
def test_python_file_nested_too_deeply_or_broken_is_refused_by_graft_build_in_words(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], source: bytes, said: str) -> None:
    # ``vino graft build`` with no --point reads the file's point from its syntax tree
    # first: nested past Python's parser, the RecursionError escaped as a traceback
    # (a broken file was answered "which point is it for?").
    from vino.cli import main

    src = tmp_path / "evil.py"
    src.write_bytes(source)
    assert main(["graft", "build", str(src)]) == 1
    err = capsys.readouterr().err
    assert f"{src}:" in err and said in err, err
    assert not src.with_suffix(".wasm").exists()


def test_python_file_not_in_utf8_is_built_as_it_is_installed_not_by_a_decode_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A byte no UTF-8 holds (Latin-1 in a comment): Registry.install and ``vino graft
    # check`` decode it replaced, but ``vino graft build`` raised UnicodeDecodeError as
    # a traceback. It now builds the module a clean copy builds.
    from vino.cli import main
    from vino.sdk.build import sample_path

    clean = sample_path("readahead_stride.py").read_bytes()
    src, ref = tmp_path / "latin.py", tmp_path / "clean.py"
    src.write_bytes(b"# caf\xe9\n" + clean)
    ref.write_bytes(b"# cafe\n" + clean)
    assert main(["graft", "build", str(src)]) == 0, capsys.readouterr().err
    assert main(["graft", "build", str(ref)]) == 0
    assert src.with_suffix(".wasm").read_bytes() == ref.with_suffix(".wasm").read_bytes()


def test_python_graft_of_9000_elifs_is_refused_in_words_not_by_a_memory_error(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    # 234 KB of ``elif``, within the source limit: past its own stack CPython's parser
    # raises MemoryError (the process holding 29 MB), which escaped the install instead
    # of GraftRejected -- an error host code may take for the machine running out.
    src = (_H + "    if x:\n        x = 0\n" + "    elif x:\n        x = 1\n" * 9000
           + "    return x\n")
    assert len(src) <= limits.MAX_PYGRAFT_SOURCE_CHARS
    _refused(arena, monkeypatch, src, "nested too deeply", python_compiles=1)


def _compile_cpu_s(source: str) -> float:
    t0 = time.process_time()
    with contextlib.suppress(PythonGraftError):  # too many locals, say: refused, not slow
        vino.pygraft.compile_source(source, PICK_LAYOUT)
    return time.process_time() - t0


@pytest.mark.parametrize("shape", [
    lambda n: _H + "    return int(" + "<".join(["x"] * n) + ")\n",
    lambda n: _H + "    if " + " and ".join(["x > 0"] * n) + ":\n        return 1\n"
              "    return 0\n",
    lambda n: _H + "    return min(" + ",".join(["x"] * n) + ")\n",
], ids=["chained comparison", "and chain", "min of many"])
def test_python_graft_of_one_long_chain_compiles_in_time_linear_in_its_length(
        shape: Callable[[int], str]) -> None:
    # One chain as long as the source limit allows (131,000 operands of ``x < x < ...``)
    # held the host's compiler for minutes: each link copied the code of all the links
    # before it (40,000 operands: 19.6 s of CPU, 72 times 5,000's). Now its code is
    # extended in place: eight times the operands, about eight times the time.
    small, large = _compile_cpu_s(shape(5000)), _compile_cpu_s(shape(40000))
    assert large < 24 * max(small, 0.01), (small, large)


# The child: a tenancy; each hostile source installed on a thread of 256 KiB of stack (an
# application's worker, say), then an honest one on the main thread.
STACK_CHILD = """
import threading
from harness import Tenancy
from vino.errors import GraftRejected
H = "def pick(x: int) -> int:\\n"
hostile = {
    "elifs": H + "    if x:\\n        x = 0\\n" + "    elif x:\\n        x = 1\\n" * 2900
             + "    return x\\n",
    "minus signs": H + "    return " + "-" * 5000 + "x\\n",
    "parentheses": H + "    return " + "(" * 199 + "x" + ")" * 199 + "\\n",
}
t = Tenancy()
before = t.snapshot()
out = {}
def run():
    for what, src in hostile.items():
        try:
            t.install(src, name="evil")
            out[what] = "installed"
        except GraftRejected as exc:
            out[what] = exc.reason
threading.stack_size(256 * 1024)
th = threading.Thread(target=run)
th.start()
th.join()
out["unchanged"] = t.snapshot() == before
t.install(H + "    return x\\n", name="honest")
out["honest"] = t.pick("t1", 7)
report(out)
"""


def test_python_graft_nested_deep_installed_from_a_small_thread_cannot_kill_the_host() -> None:
    # Python's parser and the compiler recurse in C as deep as the source nests: on a
    # thread of 256 KiB (the host's own choice, which graft calls already survive: 11a),
    # 2,900 elifs, 5,000 minus signs or 199 parentheses killed the process with SIGSEGV
    # while the host compiled them. Now an install on a thread with less than
    # PYGRAFT_COMPILE_STACK_BYTES left is refused before any parse.
    child = in_child(STACK_CHILD)
    assert child.returncode == 0 and not child.timed_out, \
        f"the host died (exit status {child.returncode}):\n{child.stderr[-2000:]}"
    out = child.result()
    for what in ("elifs", "minus signs", "parentheses"):
        assert "native stack left on this thread" in out[what], (what, out[what])
    assert out["unchanged"] and out["honest"] == 7
