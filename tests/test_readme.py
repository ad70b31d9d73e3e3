"""README.md's examples run: its WAT graft written to pick.wat, its Python blocks in order.

What if the API changes and the first program a reader copies no longer runs?
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks(lang: str) -> list[str]:
    return [body for kind, body in _BLOCK.findall(README.read_text(encoding="utf-8"))
            if kind == lang]


def test_every_python_example_in_the_readme_runs(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Each is run as a reader would run it: saved as a file (a Python graft's source is
    # read from its file), in a folder holding pick.wat.
    monkeypatch.chdir(tmp_path)
    (wat,) = _blocks("wat")
    (tmp_path / "pick.wat").write_text(wat)
    programs = _blocks("python")
    assert len(programs) == 2
    for i, body in enumerate(programs):
        (tmp_path / f"example{i}.py").write_text(body)
    first = runpy.run_path(str(tmp_path / "example0.py"))
    assert first["answer"] == 1  # the graft's answer, not the default's 0
    assert first["graft"].stats.commits == 1 and first["graft"].removal is None
    first["registry"].close()
    second = runpy.run_path(str(tmp_path / "example1.py"))
    assert second["kernel"].registry.grafts() == []  # shut down: the graft was removed
    assert (tmp_path / "disk.img").exists()
