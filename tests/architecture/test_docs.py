"""The docs name only what exists: every `vino ...` command, module, file and test.

What if a command is renamed, an option dropped, a module moved or a test renamed,
and the README, docs/*.md, BENCHMARKS.md or a module's contract (its docstring) still
send a reader there? Each command written in them is walked through the command
line's own parser (its subcommands, positional choices and options), each `make`
target looked up in the Makefile, each ``vino.x.y`` name imported, each path looked
up, each ``Class.method`` or ``Class.field`` of vino's found on that class, and each
test a doc names found among the tests.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import inspect
import re
from pathlib import Path

import pytest

import vino
from vino.cli import parser

from .imports import modules

ROOT = Path(vino.__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
# `vino.h`, `vino.zig`...: files beside the SDK's header, not Python modules.
_FILE_SUFFIXES = {"h", "c", "zig", "rs", "ts", "wat", "wasm", "py"}


def _spans(text: str) -> list[str]:
    """The inline code spans of a Markdown text, and the lines of its fenced blocks."""
    out: list[str] = []
    blocks = text.split("```")
    for i, part in enumerate(blocks):
        if i % 2:
            out.extend(part.splitlines()[1:])  # a fenced block, its language line left out
        else:  # (a docstring's ``x`` is Markdown's `x`)
            out.extend(re.findall(r"`([^`\n]+)`", part.replace("``", "`")))
    return out


@functools.cache
def _docs() -> dict[str, list[str]]:
    """The code spans of each document: the Markdown files, and every module's contract."""
    docs = {path.relative_to(ROOT).as_posix(): _spans(path.read_text()) for path in DOCS}
    for path in sorted((ROOT / "src" / "vino").rglob("*.py")):
        contract = ast.get_docstring(ast.parse(path.read_text()))
        if contract:
            docs[path.relative_to(ROOT).as_posix()] = _spans(contract)
    return docs


def _commands() -> list[tuple[str, str]]:
    found = []
    for doc, spans in _docs().items():
        for span in spans:
            m = re.match(r"\s*(?:\$\s*)?(?:\.venv/bin/)?vino (.+)", span)
            if m and "{" not in m.group(1).split()[0]:
                found.append((doc, m.group(1).split("#")[0].strip()))
    return found


def test_every_make_target_the_docs_give_is_in_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+):", makefile, re.MULTILINE))
    named = {(doc, t) for doc, spans in _docs().items() for span in spans
             for t in re.findall(r"^\s*make ([a-z][\w-]*)", span)}
    assert len(named) >= 5
    assert sorted(f"{doc}: make {t}" for doc, t in named if t not in targets) == []


@functools.cache
def _parser() -> argparse.ArgumentParser:
    return parser()


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _problems(command: str) -> list[str]:
    """What in ``command`` (the words after ``vino``, with ``[...]`` for optional parts
    and ``a|b`` for alternatives) the parser does not know."""
    words = command.replace("\\|", "|").replace("[", " ").replace("]", " ").split()
    for end in (">", "|", "&&", ";"):  # the shell's, after the command
        if end in words:
            words = words[:words.index(end)]
    p = _parser()
    positionals: list[argparse.Action] | None = None
    out = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            for alt in word.split("|"):
                action = p._option_string_actions.get(alt.split("=")[0])
                if action is None:
                    out.append(f"{p.prog}: no option {alt}")
                elif action.nargs != 0 and "=" not in alt:
                    skip = True  # its value
            continue
        subs = _subparsers(p)
        alts = word.split("|")
        if subs and positionals is None:
            if word.isupper():  # a placeholder (COMMAND)
                return out
            unknown = [a for a in alts if a not in subs]
            if unknown:
                out.append(f"{p.prog}: no command {'|'.join(unknown)}")
                return out
            p = subs[alts[0]]
            continue
        if positionals is None:
            positionals = [a for a in p._actions if not a.option_strings
                           and not isinstance(a, argparse._SubParsersAction)]
        if not positionals:
            out.append(f"{p.prog}: takes no argument {word}")
            return out
        action = positionals.pop(0)
        if action.choices is not None and not word.isupper():
            out.extend(f"{p.prog}: {a} is not one of {sorted(action.choices)}"
                       for a in alts if a not in action.choices)
        if action.nargs in ("*", "+"):
            positionals.insert(0, action)
    return out


def test_every_command_the_docs_give_is_one_the_command_line_takes() -> None:
    commands = _commands()
    assert len(commands) > 50  # the walk found them
    wrong = [f"{doc}: vino {cmd}: {problem}" for doc, cmd in commands
             for problem in _problems(cmd)]
    assert wrong == []


def test_every_command_the_command_line_takes_is_in_the_readmes_table() -> None:
    rows = [line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| `vino ")]
    spans = [re.match(r"\| `vino ([^`]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]
    told = {tuple(w for w in span.replace("[", " ").replace("]", " ").split()
                  if not w.startswith("-") and not w.isupper())[:2] for span in spans}
    missing = []
    for name, sub in _subparsers(_parser()).items():
        commands: list[tuple[str, ...]] = [(name, s) for s in _subparsers(sub)] or [(name,)]
        for action in sub._actions:  # a command's positional choices: vino bench micro
            if not action.option_strings and action.choices and not _subparsers(sub):
                commands += [(name, str(c)) for c in action.choices if c != action.default]
        missing += [" ".join(c) for c in commands
                    if not any(t[:len(c)] == c or _told_as_alternative(t, c) for t in told)]
    assert missing == []


def test_the_design_map_names_every_module() -> None:
    # What if a module is added or split off (kernel/openfile.py from fs.py) and the map
    # of the code (docs/DESIGN.md section 8) never names it? Graft sources are named
    # by their folders.
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    block = text.split("## 8. Map of the code")[1].split("```")[1]
    named = set(re.findall(r"\s([\w/]+(?:\.py|/))(?=\s)", block))
    src = ROOT / "src" / "vino"
    folders = {"sdk/samples/", "sdk/hostile/"}
    modules_ = {p.relative_to(src).as_posix() for p in src.rglob("*.py")}
    unnamed = sorted(m for m in modules_ - named if not any(m.startswith(f) for f in folders))
    assert len(modules_) > 100  # the walk found them
    assert unnamed == []
    assert sorted(n for n in named if n not in modules_ and n not in folders) == []


def test_every_option_of_a_command_is_in_its_readmes_rows() -> None:
    # What if an option is added to a command and the README's table never says so?
    rows = [re.match(r"\| `vino ([^`]+)`", line).group(1)  # type: ignore[union-attr]
            for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| `vino ")]
    missing = []
    for name, sub in _subparsers(_parser()).items():
        for leaf, parser_ in [(f"{name} {s}", p) for s, p in _subparsers(sub).items()] or [
                (name, sub)]:
            told = " ".join(r for r in rows if (r + " ").startswith(leaf + " "))
            said = set(re.findall(r"--?[a-z][\w-]*", told.replace("\\|", " ")))
            missing += [f"vino {leaf} {opt}" for action in parser_._actions
                        for opt in action.option_strings[-1:]
                        if opt != "--help" and not set(action.option_strings) & said]
    assert missing == []


def _told_as_alternative(told: tuple[str, ...], command: tuple[str, ...]) -> bool:
    """``bench table|savings``, as the table writes alternatives, tells ``bench table``."""
    return (len(told) == 2 and told[0] == command[0] and len(command) == 2
            and command[1] in told[1].replace("\\|", "|").split("|"))


@pytest.mark.parametrize("command", ["bench tabel", "demo --fast", "graft check X --pont P",
                                     "fsck IMAGE EXTRA", "bench [table|savigns]"])
def test_a_mistyped_command_is_caught(command: str) -> None:
    assert _problems(command) != []


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:n]))
        except ImportError:
            continue
        for attr in parts[n:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_vino_module_the_docs_name_can_be_imported() -> None:
    names: set[str] = set()
    for spans in _docs().values():
        for span in spans:
            names.update(n for n in re.findall(r"(?<![\w/.])vino(?:\.[A-Za-z_]\w*)+", span)
                         if n.split(".")[1] not in _FILE_SUFFIXES and not n[5].isupper()
                         and n.split(".")[1] not in {"view", "offset"})  # Zig's vino.*
    assert len(names) > 20
    assert sorted(n for n in names if not _resolves(n)) == []


def test_every_path_the_docs_name_exists() -> None:
    src = ROOT / "src" / "vino"
    missing = []
    for doc, spans in _docs().items():
        for span in spans:
            for path in re.findall(r"(?<![\w/.-])((?:src|tests|docs|bench|graft|kernel|sqlite|"
                                   r"sdk|pygraft|testing|demo|native|vino)/[\w/.*-]*\w)", span):
                if any(part.isupper() for part in re.split(r"[/.]", path)):
                    continue  # a placeholder: samples/NAME.c
                # (native/x.c: the graft's or the kernel's; a module's paths: beside it too)
                bases = (ROOT, ROOT / "src", src, src / "sdk", src / "graft", src / "kernel",
                         (ROOT / doc).parent)
                if not any(next(base.glob(path), None) for base in bases):
                    missing.append(f"{doc}: {path}")
    assert missing == []


def _test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        names.add(path.stem)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):  # test_x = SomeMachine.TestCase
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_every_test_the_docs_name_exists() -> None:
    known = _test_names()
    missing = sorted({f"{doc}: {name}" for doc, spans in _docs().items() for span in spans
                      for name in re.findall(r"\b(test_\w+)", span)
                      if name not in known and not name.endswith("_")})  # test_x_...: many
    assert missing == []


# `Class.attr` spans that name another library's class of the same name.
_NOT_OURS = {"Instance.exports"}  # wasmtime's Instance


def _classes() -> dict[str, list[type]]:
    """Every class vino defines, by name."""
    found: dict[str, list[type]] = {}
    for name in modules(ROOT / "src" / "vino", "vino"):
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, type) and value.__module__ == name:
                found.setdefault(value.__name__, []).append(value)
    return found


def _has(cls: type, attr: str) -> bool:
    """Whether ``cls`` has ``attr``: defined, declared (annotation, slot) or set on self."""
    for c in cls.__mro__:
        if attr in vars(c) or attr in getattr(c, "__annotations__", {}) \
                or attr in getattr(c, "__slots__", ()):
            return True
        try:
            source = inspect.getsource(c)
        except (OSError, TypeError):
            continue
        if re.search(rf"self\.{attr}\b", source):
            return True
    return False


def test_every_method_and_field_the_docs_name_exists() -> None:
    classes = _classes()
    named = {(doc, f"{c}.{a}") for doc, spans in _docs().items() for span in spans
             for c, a in re.findall(r"(?<![\w.])([A-Z][A-Za-z0-9]+)\.([a-z_]\w*)\b", span)
             if c in classes}
    assert len(named) > 100
    missing = sorted(f"{doc}: {ref}" for doc, ref in named if ref not in _NOT_OURS and not any(
        _has(cls, ref.split(".")[1]) for cls in classes[ref.split(".")[0]]))
    assert missing == []
