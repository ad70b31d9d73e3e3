"""Attacks through the source argument: make the host open a file with its own rights.

An application installs what a tenant sends it (``Registry.install(point, text, ...)``,
``Kernel.graft``). Found: a one-line string ending in ``.wat`` or ``.wasm`` was read as a
path, and any one-line string at all as the path of a Python graft, with the host's
rights -- a tenant whose "source text" was ``/srv/other/secret.wat`` got another
principal's graft installed as her own (and its behaviour to probe), and one naming a
file that is no graft got a refusal quoting the parser's view of it. Now a ``str`` is
always source text, never opened; a path is an ``os.PathLike`` (``pathlib.Path``), which
only the application makes. A string that looks like a file name is refused, saying so,
before anything is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vino.errors import GraftRejected

from .harness import DEFAULT_ANSWER, TARGET, Tenancy, pick_returning

SECRET = 42  # what the other principal's graft answers (in 0..100): its "secret"


class Opened:
    """Counts the files the host opens under ``watched``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, watched: Path) -> None:
        self.paths: list[str] = []
        real_open = Path.open
        real_read_text = Path.read_text
        real_read_bytes = Path.read_bytes

        def seen(p: Path) -> None:
            if str(p).startswith(str(watched)):
                self.paths.append(str(p))

        def open_(p: Path, *a: object, **kw: object) -> object:
            seen(p)
            return real_open(p, *a, **kw)  # type: ignore[call-overload]

        def read_text(p: Path, *a: object, **kw: object) -> str:
            seen(p)
            return real_read_text(p, *a, **kw)  # type: ignore[arg-type]

        def read_bytes(p: Path) -> bytes:
            seen(p)
            return real_read_bytes(p)

        monkeypatch.setattr(Path, "open", open_)
        monkeypatch.setattr(Path, "read_text", read_text)
        monkeypatch.setattr(Path, "read_bytes", read_bytes)


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    """Another principal's files, readable by the host: a WAT graft, a Python graft,
    and a file that is no graft at all."""
    d = tmp_path / "other"
    d.mkdir()
    (d / "secret.wat").write_text(pick_returning(SECRET))
    (d / "secret.py").write_text(f"def pick(x: int) -> int:\n    return {SECRET}\n")
    (d / "shadow.wat").write_text("root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\n")
    return d


@pytest.mark.parametrize("name", ["secret.wat", "secret.py", "shadow.wat"])
def test_graft_whose_source_text_names_a_host_file_cannot_make_the_host_read_it(
        tenancy: Tenancy, secrets: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    opened = Opened(monkeypatch, secrets)
    before = tenancy.snapshot()
    text = str(secrets / name)  # what the tenant sent: a string, as an application gets it
    with pytest.raises(GraftRejected) as exc:
        tenancy.install(text)
    assert "not a file name" in exc.value.reason and "pathlib.Path" in exc.value.reason
    assert "root:" not in str(exc.value) and "hash" not in str(exc.value)
    assert opened.paths == []
    tenancy.assert_unchanged(before)
    assert tenancy.pick(TARGET, 5) == DEFAULT_ANSWER


def test_graft_whose_source_text_names_a_host_file_cannot_be_checked_either(
        tenancy: Tenancy, secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = Opened(monkeypatch, secrets)
    for name in ("secret.wat", "secret.py"):
        with pytest.raises(GraftRejected, match="not a file name"):
            tenancy.registry.check(tenancy.pick, f"  {secrets / name}  ", tenancy.alice, TARGET)
    assert opened.paths == []


def test_one_line_python_text_is_compiled_as_text_not_opened(
        tenancy: Tenancy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A one-line Python graft: before, any one-line string was a Python graft's path.
    monkeypatch.chdir(tmp_path)
    opened = Opened(monkeypatch, tmp_path)
    g = tenancy.install("def pick(x: int) -> int: return x + 1")
    assert tenancy.pick(TARGET, 5) == 6
    assert opened.paths == []
    g.remove()


class _AppPath(os.PathLike[str]):
    """An application's own path type (any ``os.PathLike`` is a path)."""

    def __init__(self, p: Path) -> None:
        self.p = p

    def __fspath__(self) -> str:
        return str(self.p)


def test_an_applications_path_objects_are_still_read(tenancy: Tenancy, secrets: Path) -> None:
    g = tenancy.install(secrets / "secret.wat")
    assert tenancy.pick(TARGET, 5) == SECRET
    g.remove()
    g = tenancy.install(_AppPath(secrets / "secret.py"))
    assert tenancy.pick(TARGET, 5) == SECRET
    g.remove()


def test_a_path_to_an_endless_file_is_refused_not_read_forever(tenancy: Tenancy,
                                                               tmp_path: Path) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    (tmp_path / "zero.py").symlink_to("/dev/zero")
    before = tenancy.snapshot()
    for path in (Path("/dev/zero"), tmp_path / "zero.py"):
        with pytest.raises(GraftRejected, match="longer than"):
            tenancy.install(path)
    tenancy.assert_unchanged(before)
