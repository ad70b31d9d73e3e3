"""A wheel or sdist ships every C file and header vino compiles on first use.

The native parts (the ticker, the stack guard, the graft fast path, the plain read)
are built from their C sources on the user's machine, so an install that leaves one
out, or a header they include, silently loses that native path. Every file under a
``native`` directory of the package must match a ``package-data`` pattern.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import vino

SRC = Path(vino.__file__).parent
PYPROJECT = SRC.parents[1] / "pyproject.toml"


def test_every_native_source_and_header_is_package_data() -> None:
    with PYPROJECT.open("rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["vino"]
    shipped = {path for pattern in patterns for path in SRC.glob(pattern)}
    native = {path for path in SRC.rglob("*") if path.is_file() and "native" in
              path.relative_to(SRC).parts[:-1] and path.suffix in (".c", ".h")}
    assert len(native) >= 5  # the walk found them
    assert sorted(p.relative_to(SRC).as_posix() for p in native - shipped) == []
