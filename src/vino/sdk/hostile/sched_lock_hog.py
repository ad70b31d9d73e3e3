"""sched.pick, in Python: takes its group's lock, then spins forever holding it.
Expected: a thread waiting for the lock past the lock time-out dooms the graft
(lock_timeout); the lock is released and the waiter proceeds."""

from vino.pygraft import lock


def pick(n: int) -> int:
    lock(1)
    while True:
        pass
