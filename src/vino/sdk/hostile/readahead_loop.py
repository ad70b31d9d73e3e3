"""fs.readahead, in Python: never returns.
Expected: stopped by its CPU budget (timeout); the read completes with the default."""


def readahead(block: int) -> int:
    n = 0
    while True:
        n += 1
