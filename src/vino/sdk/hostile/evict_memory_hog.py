"""vm.evict, in Python: a local array of 32 MB, past any small memory quota.
Expected: its frame grows memory to the quota and stops; aborted (resource), and
every page it took is given back when it is removed."""

from vino.pygraft import Row


def evict(cand: list[Row]) -> int:
    hoard = [0] * 4_000_000
    hoard[len(hoard) - 1] = 1
    return 0
