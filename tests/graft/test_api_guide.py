"""docs/API.md runs: its Python blocks, in order, as one program (its C file built first).

The guide is the shop application; every claim it makes is an assertion in its own
code, so a change of behaviour that the guide does not follow fails here.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "API.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in _BLOCK.findall(GUIDE.read_text(encoding="utf-8"))
            if kind == lang]


def test_the_guide_has_the_shop_in_python_and_c() -> None:
    assert len(blocks("python")) >= 10
    assert any(b.startswith("// file: ") for b in blocks("c"))


def test_every_example_in_the_api_guide_runs(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for body in blocks("c"):
        first = body.splitlines()[0]
        if first.startswith("// file: "):
            (tmp_path / first.removeprefix("// file: ").strip()).write_text(body)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # the guide configures logging
    monkeypatch.setattr(root, "level", root.level)
    namespace: dict[str, object] = {"__name__": "api_guide"}
    for i, body in enumerate(blocks("python")):
        code = compile(body, f"{GUIDE.name}, python block {i + 1}", "exec")
        exec(code, namespace)
