"""fs.readahead, in Python: recurses without end.
Expected: the Wasm stack overflows (trap), however deep the host's own stack; the
read completes with the default."""


def down(n: int) -> int:
    return down(n + 1) + 1


def readahead(block: int) -> int:
    return down(block)
