"""Work run on threads for a test: every thread joined, and what any of them raised re-raised.

    run_threads(reader, reader, lambda: toucher(1), lambda: toucher(2))

runs each callable on a thread of its own, all at once, waits for every one, and
then raises the first exception any of them raised (the others are attached as its
notes), so a failed assertion inside a thread fails the test with its own traceback
instead of being printed by the thread and lost.

Invariant: when ``run_threads`` returns or raises, no thread it started is running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["run_threads"]


def run_threads(*targets: Callable[[], object]) -> None:
    """Run each of ``targets`` on a thread of its own; wait for all; raise the first
    exception any of them raised (by the order of ``targets``)."""
    errors: list[BaseException | None] = [None] * len(targets)

    def run(i: int) -> None:
        try:
            targets[i]()
        except BaseException as exc:  # re-raised below, on the caller's thread
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    raised = [e for e in errors if e is not None]
    if raised:
        for other in raised[1:]:
            raised[0].add_note(f"another thread raised too: {other!r}")
        raise raised[0]
