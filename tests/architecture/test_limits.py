"""Every limit and tunable is named with its unit.

What if a number lands in ``limits.py`` or a ``params.py`` without saying whether it
counts bytes, pages, seconds or entries? A reader cannot tell what happens at the
limit. Each constant there must carry its unit: in its name (``_S``, ``_BYTES``...)
or in a comment on its line or the line above.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import vino

SRC = Path(vino.__file__).parent
TUNABLES = ("limits.py", "kernel/params.py", "sqlite/params.py")
_UNIT_NAMES = re.compile(r"_(S|MS|US|NS|BYTES|BITS|PAGES|BLOCKS|FRAMES|ENTRIES|CHARS|ROWS|"
                         r"CALLS|PER_S|KIB|MIB)$")


@pytest.mark.parametrize("module", TUNABLES)
def test_every_tunable_says_its_unit(module: str) -> None:
    lines = (SRC / module).read_text().splitlines()
    silent = []
    for i, line in enumerate(lines):
        m = re.match(r"([A-Z][A-Z0-9_]*)(?:: Final(?:\[[^\]]*\])?)? = ", line)
        if m and not (_UNIT_NAMES.search(m.group(1)) or "#" in line
                      or (i > 0 and lines[i - 1].lstrip().startswith("#"))):
            silent.append(f"{module}:{i + 1}: {m.group(1)}")
    assert silent == []
