"""Python grafts go everywhere a graft goes: Registry.install, vino graft build / check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vino.cli import main
from vino.errors import GraftRejected, PythonGraftError
from vino.kernel.kernel import Kernel
from vino.pygraft import Row
from vino.sdk.build import sample_path


def oldest(cand: list[Row]) -> int:
    """A whole-function graft: the least recently used candidate."""
    best = 0
    for i in range(len(cand)):
        if cand[i].last_use < cand[best].last_use:
            best = i
    return best


def wrong_answer(cand: list[Row]) -> int:
    return len(cand) + 5


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel.boot(tmp_path / "k.img", frames=16)
    yield k
    k.shutdown()


def test_install_takes_a_python_function_and_it_runs_protected(kernel: Kernel) -> None:
    alice = kernel.add_user("alice")
    aspace = kernel.address_space(kernel.spawn(alice, "db"))
    g = kernel.registry.install("vm.evict", oldest, alice.principal, aspace)
    assert g.name == "oldest"
    for v in range(40):
        aspace.touch(v)
    assert g.stats.commits > 0 and not g.stats.aborts
    bad = kernel.registry.install("vm.evict", wrong_answer, alice.principal, aspace,
                                  replace=True)
    aspace.touch(100)
    assert bad.state == "removed" and bad.removal is not None
    assert bad.removal.reason.value == "invalid_result"


def test_install_takes_a_py_file_and_python_text(kernel: Kernel) -> None:
    alice = kernel.add_user("alice")
    aspace = kernel.address_space(kernel.spawn(alice, "db"))
    g = kernel.registry.install("vm.evict", sample_path("evict_keep.py"), alice.principal, aspace)
    assert g.name == "evict_keep" and g.send((0).to_bytes(4, "little")) == 0
    text = "def evict(n: int) -> int:\n    return 0\n"
    kernel.registry.check("vm.evict", text, alice.principal, aspace)


def test_install_of_python_outside_the_subset_changes_nothing(kernel: Kernel) -> None:
    alice = kernel.add_user("alice")
    aspace = kernel.address_space(kernel.spawn(alice, "db"))
    before = alice.principal.usage.snapshot()
    with pytest.raises(PythonGraftError) as info:
        kernel.registry.install("vm.evict", "def evict(n: int) -> int:\n    return n / 2\n",
                                alice.principal, aspace)
    assert isinstance(info.value, GraftRejected) and info.value.line == 2
    after = alice.principal.usage.snapshot()
    assert after.pop("cpu_ns") >= before.pop("cpu_ns")  # the compile is the installer's
    assert not kernel.registry.grafts() and after == before


def test_cli_builds_and_checks_a_python_graft(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ra.wasm"
    assert main(["graft", "build", str(sample_path("readahead_stride.py")), "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\0asm" and "fs.readahead" in capsys.readouterr().out
    assert main(["graft", "check", str(sample_path("readahead_stride.py")),
                 "--point", "fs.readahead"]) == 0
    bad = tmp_path / "bad.py"
    bad.write_text("def pick(thread: list[int]) -> int:\n    return 0.5\n")
    assert main(["graft", "build", str(bad)]) == 1
    assert f"{bad}:2:12" in capsys.readouterr().err
    assert main(["graft", "check", str(bad), "--point", "sched.pick"]) == 1
    assert f"{bad}:2:12" in capsys.readouterr().out


def test_bench_python_runs_and_both_twins_agree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "python", "--quick", "--rounds", "1", "--json"]) == 0
    out = capsys.readouterr().out
    for name in ("readahead_stride", "evict_keep", "sqlite_evict", "sched_interactive",
                 "chacha20_filter"):
        assert name in out
