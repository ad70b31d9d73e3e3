"""Anything outside the subset is rejected at compile time: file, line, column, what instead."""

from __future__ import annotations

import textwrap

import pytest

from vino.errors import PythonGraftError, VinoError
from vino.kernel.layouts import ACCESS, READAHEAD
from vino.pygraft import compile_source

HEAD = "def on_access(file_id: int, block: int, op: int, time_ns: int) -> int:\n"

# (body of on_access, the line of the offence within the file, words the error must use)
CASES = [
    ("    x = 1.5\n    return 0\n", 2, "1.5"),
    ("    return file_id / 2\n", 2, "//"),
    ("    return file_id ** 2\n", 2, "multiply"),
    ("    s = 'abc'\n    return 0\n", 2, "log()"),
    ("    xs = [i for i in range(3)]\n    return 0\n", 2, "list comprehension"),
    ("    a, b = 1, 2\n    return 0\n", 2, "one name"),
    ("    try:\n        pass\n    except Exception:\n        pass\n    return 0\n", 2, "try"),
    ("    for x in [1, 2]:\n        pass\n    return 0\n", 2, "range"),
    ("    f = lambda: 1\n    return 0\n", 2, "lambda"),
    ("    if op:\n        y = 1\n    return y\n", 4, "before it is assigned"),
    ("    return undefined_name\n", 2, "unknown name"),
    ("    return len('x')\n", 2, "not an array"),
    ("    if op:\n        return 1\n", 1, "return statement"),
    ("    return file_id and block\n", 2, "compare explicitly"),
    ("    xs = [0] * 4\n    return xs[1:2][0]\n", 3, "slice"),
    ("    return lock(1)\n", 2, "import"),
    ("    return print(1)\n", 2, "unknown function"),
    ("    d = {}\n    return 0\n", 2, "dict"),
]


@pytest.mark.parametrize(("body", "line", "words"), CASES)
def test_graft_outside_the_subset_is_rejected_with_where_and_what_instead(
        body: str, line: int, words: str) -> None:
    with pytest.raises(PythonGraftError) as info:
        compile_source(HEAD + body, ACCESS, filename="policy.py")
    err = info.value
    assert isinstance(err, VinoError)
    assert err.filename == "policy.py" and err.line == line and err.col >= 1
    assert err.instead
    text = str(err)
    assert text.startswith(f"policy.py:{line}:") and words in text, text


def test_module_level_code_outside_the_subset_is_rejected() -> None:
    for src, words in [("import os\n", "from vino.pygraft"),
                       ("from os import path\n", "vino.pygraft"),
                       ("class A:\n    pass\n", "class"),
                       ("x = foo()\n", "constant"),
                       ("from vino.pygraft import nothing\n", "nothing")]:
        with pytest.raises(PythonGraftError) as info:
            compile_source(src + HEAD + "    return 0\n", ACCESS, filename="m.py")
        assert info.value.line == 1 and words in str(info.value), str(info.value)


def test_graft_without_an_entry_or_with_unknown_fields_is_rejected() -> None:
    with pytest.raises(PythonGraftError, match="def readahead"):
        compile_source("def other() -> int:\n    return 0\n", READAHEAD)
    with pytest.raises(PythonGraftError, match="no field 'blocks'") as info:
        compile_source("def readahead(blocks: int) -> int:\n    return 0\n", READAHEAD)
    assert info.value.line == 1 and info.value.col > 1
    with pytest.raises(PythonGraftError, match="read-only"):
        compile_source("def readahead(hist: list[int]) -> int:\n    hist[0] = 1\n"
                       "    return 0\n", READAHEAD)


def test_graft_naming_another_point_is_rejected_for_the_point_it_is_compiled_for() -> None:
    with pytest.raises(PythonGraftError, match=r"POINT says 'vm\.evict'"):
        compile_source('POINT = "vm.evict"\n' + HEAD + "    return 0\n", ACCESS)
    with pytest.raises(PythonGraftError, match="POINT is not a string") as info:
        compile_source("POINT = 3\n" + HEAD + "    return 0\n", ACCESS)
    assert info.value.line == 1
    out = compile_source('POINT = "fs.access"\n' + HEAD + "    return 0\n", ACCESS)
    assert out.point == "fs.access"


def test_assigning_state_without_global_is_rejected() -> None:
    src = textwrap.dedent("""
        n: int = 0
        def on_access(block: int) -> int:
            n = block
            return n
    """)
    with pytest.raises(PythonGraftError, match="global n"):
        compile_source(src, ACCESS)


def test_state_too_large_for_a_graft_is_rejected_before_anything_is_built() -> None:
    src = "big: list[int] = [1] * 100_000_000\n" + HEAD + "    return big[0]\n"
    with pytest.raises(PythonGraftError, match="too large"):
        compile_source(src, ACCESS)
    many = "".join(f"s{i}: list[int] = [0] * 1_000_000\n" for i in range(3))
    with pytest.raises(PythonGraftError, match="module state"):
        compile_source(many + HEAD + "    return 0\n", ACCESS)
